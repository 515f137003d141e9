#include "vdisk/vdisk_keys.h"

#include <fmt/format.h>

#include <charconv>

namespace weft::vdisk {

namespace {

bool NameCharacter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

template <typename Record>
Status DecodeRecord(std::string_view key, std::string_view value, Record& record,
                    std::string_view kind) {
  if (!record.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
    return Status::Corruption(fmt::format("metadata row {}: not a valid {} record", key, kind));
  }
  if (record.format_version() != 1) {
    return Status::Corruption(fmt::format("metadata row {}: {} record format version {} (want 1)",
                                          key, kind, record.format_version()));
  }
  return Status::Ok();
}

}  // namespace

Status ValidateName(std::string_view what, std::string_view name) {
  if (name.empty()) return Status::InvalidArgument(fmt::format("{} name is empty", what));
  if (name.size() > kNameBytesMax) {
    return Status::InvalidArgument(
        fmt::format("{} name is {} bytes long (at most {})", what, name.size(), kNameBytesMax));
  }
  if (name.front() == '.' || name.front() == '-') {
    return Status::InvalidArgument(
        fmt::format("{} name '{}' must not start with '.' or '-'", what, name));
  }
  for (char c : name) {
    if (!NameCharacter(c)) {
      return Status::InvalidArgument(fmt::format(
          "{} name '{}' has a character other than letters, digits, '.', '_' and '-'", what, name));
    }
  }
  return Status::Ok();
}

Status ValidateVdiskSize(uint64_t size_bytes) {
  if (size_bytes == 0) return Status::InvalidArgument("vdisk size is zero");
  if (size_bytes % kVdiskSizeAlignmentBytes != 0) {
    return Status::InvalidArgument(
        fmt::format("vdisk size {} is not a multiple of 4 KiB", size_bytes));
  }
  if (size_bytes > kVdiskBytesMax) {
    return Status::InvalidArgument(
        fmt::format("vdisk size {} is over the limit of 64 TiB", size_bytes));
  }
  return Status::Ok();
}

std::string ContainerKey(std::string_view name) { return fmt::format("container/{}", name); }
std::string VdiskKey(std::string_view name) { return fmt::format("vdisk/{}", name); }
std::string BlockMapPrefix(uint64_t vdisk_id) { return fmt::format("blockmap/{:016x}/", vdisk_id); }
std::string BlockMapKey(uint64_t vdisk_id, uint64_t vblock) {
  return fmt::format("blockmap/{:016x}/{:016x}", vdisk_id, vblock);
}
std::string EgroupPrefix(uint64_t vdisk_id) { return fmt::format("egroup/{:016x}/", vdisk_id); }
std::string EgroupKey(uint64_t vdisk_id, uint64_t egroup_id) {
  return fmt::format("egroup/{:016x}/{:016x}", vdisk_id, egroup_id);
}
std::string IdCounterKey(std::string_view kind) { return fmt::format("ids/{}", kind); }

Result<uint64_t> ParseKeySuffix(std::string_view key) {
  constexpr size_t kDigits = 16;
  uint64_t value = 0;
  if (key.size() < kDigits) {
    return Status::Corruption(fmt::format("metadata key {} has no 16-digit suffix", key));
  }
  const char* begin = key.data() + key.size() - kDigits;
  const auto [end, error] = std::from_chars(begin, key.data() + key.size(), value, 16);
  if (error != std::errc() || end != key.data() + key.size()) {
    return Status::Corruption(fmt::format("metadata key {} has no 16-digit suffix", key));
  }
  return value;
}

std::string Encode(const google::protobuf::MessageLite& record) {
  std::string value;
  const bool serialized = record.SerializeToString(&value);
  WEFT_ASSERT(serialized);
  return value;
}

Status Decode(std::string_view key, std::string_view value, records::Container& record) {
  return DecodeRecord(key, value, record, "container");
}
Status Decode(std::string_view key, std::string_view value, records::Vdisk& record) {
  return DecodeRecord(key, value, record, "vdisk");
}
Status Decode(std::string_view key, std::string_view value, records::VblockMapping& record) {
  WEFT_RETURN_IF_ERROR(DecodeRecord(key, value, record, "block map"));
  if (record.slot() >= kSlotsPerEgroup) {
    return Status::Corruption(
        fmt::format("metadata row {}: slot {} out of range", key, record.slot()));
  }
  return Status::Ok();
}
Status Decode(std::string_view key, std::string_view value, records::Egroup& record) {
  return DecodeRecord(key, value, record, "egroup");
}
Status Decode(std::string_view key, std::string_view value, records::IdCounter& record) {
  return DecodeRecord(key, value, record, "id counter");
}

}  // namespace weft::vdisk
