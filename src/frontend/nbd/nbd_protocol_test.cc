// The sans-I/O codec (nbd_protocol.h) and handshake (nbd_negotiation.h): every decoder's error
// paths, the request checks, the encoders' bytes, and option haggling against a memory provider.
#include "frontend/nbd/nbd_protocol.h"

#include <gtest/gtest.h>

#include <cstring>

#include "frontend/nbd/nbd_negotiation.h"
#include "frontend/nbd/nbd_test_util.h"

namespace weft::nbd {
namespace {

using Bytes = testing::WireBytes;

template <typename T>
T Load(const std::vector<std::byte>& bytes, size_t offset) {
  EXPECT_LE(offset + sizeof(T), bytes.size());
  BigEndian<T> wire;
  std::memcpy(&wire, bytes.data() + offset, sizeof(T));
  return wire.get();
}

struct ParsedOptionReply {
  uint32_t option = 0;
  uint32_t type = 0;
  std::vector<std::byte> payload;
};

// Splits a byte string of option replies, checking each magic and length.
std::vector<ParsedOptionReply> ParseOptionReplies(const std::vector<std::byte>& bytes) {
  std::vector<ParsedOptionReply> replies;
  size_t offset = 0;
  while (offset < bytes.size()) {
    EXPECT_EQ(Load<uint64_t>(bytes, offset), kOptionReplyMagic);
    ParsedOptionReply reply;
    reply.option = Load<uint32_t>(bytes, offset + 8);
    reply.type = Load<uint32_t>(bytes, offset + 12);
    const uint32_t length = Load<uint32_t>(bytes, offset + 16);
    offset += 20;
    EXPECT_LE(offset + length, bytes.size());
    reply.payload.assign(bytes.begin() + offset, bytes.begin() + offset + length);
    offset += length;
    replies.push_back(std::move(reply));
  }
  return replies;
}

TEST(BigEndianTest, StoresNetworkOrder) {
  BigEndian<uint32_t> value(0x01020304);
  const auto* bytes = reinterpret_cast<const uint8_t*>(&value);
  EXPECT_EQ(bytes[0], 1);
  EXPECT_EQ(bytes[3], 4);
  EXPECT_EQ(value.get(), 0x01020304u);
  EXPECT_EQ(BigEndian<uint64_t>(0xfedcba9876543210).get(), 0xfedcba9876543210u);
}

TEST(ClientFlagsTest, RejectsWrongSizeAndUnknownFlags) {
  EXPECT_TRUE(DecodeClientFlags(Bytes().U16(1).span()).status().IsInvalidArgument());
  EXPECT_TRUE(DecodeClientFlags(Bytes().U32(4).span()).status().IsInvalidArgument());
  EXPECT_TRUE(DecodeClientFlags(Bytes().U32(0x80000001).span()).status().IsInvalidArgument());
  auto flags = DecodeClientFlags(Bytes().U32(3).span());
  ASSERT_TRUE(flags.ok());
  EXPECT_EQ(*flags, 3u);
}

TEST(OptionHeaderTest, ChecksSizeMagicAndLength) {
  EXPECT_TRUE(DecodeOptionHeader(Bytes().U64(kOptionMagic).span()).status().IsInvalidArgument());
  EXPECT_TRUE(DecodeOptionHeader(Bytes().U64(kNbdMagic).U32(kOptGo).U32(0).span())
                  .status()
                  .IsInvalidArgument());
  auto header = DecodeOptionHeader(Bytes().U64(kOptionMagic).U32(kOptGo).U32(77).span());
  ASSERT_TRUE(header.ok());
  EXPECT_EQ(header->option, kOptGo);
  EXPECT_EQ(header->length_bytes, 77u);
  EXPECT_TRUE(CheckOptionLength({kOptGo, kOptionPayloadMaxBytes}).ok());
  EXPECT_TRUE(CheckOptionLength({kOptGo, kOptionPayloadMaxBytes + 1}).IsNoSpace());
  EXPECT_TRUE(CheckOptionLength({kOptGo, UINT32_MAX}).IsNoSpace());
}

TEST(InfoRequestTest, DecodesNameAndInfoTypes) {
  auto request =
      DecodeInfoRequest(Bytes().String32("disk").U16(2).U16(kInfoName).U16(kInfoBlockSize).span());
  ASSERT_TRUE(request.ok()) << request.status().ToString();
  EXPECT_EQ(request->export_name, "disk");
  EXPECT_EQ(request->info_types, (std::vector<uint16_t>{kInfoName, kInfoBlockSize}));
  auto empty_name = DecodeInfoRequest(Bytes().U32(0).U16(0).span());
  ASSERT_TRUE(empty_name.ok());
  EXPECT_EQ(empty_name->export_name, "");
}

TEST(InfoRequestTest, RejectsEveryMalformedShape) {
  EXPECT_TRUE(DecodeInfoRequest({}).status().IsInvalidArgument());
  EXPECT_TRUE(DecodeInfoRequest(Bytes().U16(0).span()).status().IsInvalidArgument());
  // The name length points past the payload.
  EXPECT_TRUE(
      DecodeInfoRequest(Bytes().U32(100).Text("ab").U16(0).span()).status().IsInvalidArgument());
  EXPECT_TRUE(DecodeInfoRequest(Bytes().U32(UINT32_MAX).span()).status().IsNoSpace());
  EXPECT_TRUE(DecodeInfoRequest(Bytes().String32(std::string(4097, 'x')).U16(0).span())
                  .status()
                  .IsNoSpace());
  EXPECT_TRUE(DecodeInfoRequest(Bytes().String32(std::string("a\0b", 3)).U16(0).span())
                  .status()
                  .IsInvalidArgument());
  // No info count, a count larger than the data, a count smaller than the data.
  EXPECT_TRUE(DecodeInfoRequest(Bytes().String32("d").span()).status().IsInvalidArgument());
  EXPECT_TRUE(
      DecodeInfoRequest(Bytes().String32("d").U16(2).U16(0).span()).status().IsInvalidArgument());
  EXPECT_TRUE(DecodeInfoRequest(Bytes().String32("d").U16(1).U16(0).U16(1).span())
                  .status()
                  .IsInvalidArgument());
  Bytes many;
  many.String32("d").U16(kInfoRequestsMax + 1);
  for (uint32_t i = 0; i <= kInfoRequestsMax; ++i) many.U16(0);
  EXPECT_TRUE(DecodeInfoRequest(many.span()).status().IsNoSpace());
}

TEST(ExportNameTest, WholePayloadIsTheName) {
  auto name = DecodeExportName(Bytes().Text("vdisk-1").span());
  ASSERT_TRUE(name.ok());
  EXPECT_EQ(*name, "vdisk-1");
  EXPECT_EQ(*DecodeExportName({}), "");
  EXPECT_TRUE(DecodeExportName(Bytes().Text(std::string(4097, 'n')).span()).status().IsNoSpace());
  EXPECT_TRUE(
      DecodeExportName(Bytes().Text(std::string("x\0", 2)).span()).status().IsInvalidArgument());
}

TEST(EmptyOptionTest, RejectsData) {
  EXPECT_TRUE(DecodeEmptyOption({}).ok());
  EXPECT_TRUE(DecodeEmptyOption(Bytes().U32(0).span()).IsInvalidArgument());
}

TEST(MetaContextTest, DecodesQueries) {
  auto request = DecodeMetaContextRequest(
      Bytes().String32("disk").U32(2).String32("base:allocation").String32("x-y:z").span());
  ASSERT_TRUE(request.ok()) << request.status().ToString();
  EXPECT_EQ(request->export_name, "disk");
  EXPECT_EQ(request->queries, (std::vector<std::string>{"base:allocation", "x-y:z"}));
}

TEST(MetaContextTest, RejectsEveryMalformedShape) {
  EXPECT_TRUE(DecodeMetaContextRequest({}).status().IsInvalidArgument());
  EXPECT_TRUE(DecodeMetaContextRequest(Bytes().String32("d").span()).status().IsInvalidArgument());
  EXPECT_TRUE(
      DecodeMetaContextRequest(Bytes().String32("d").U32(1).span()).status().IsInvalidArgument());
  EXPECT_TRUE(DecodeMetaContextRequest(Bytes().String32("d").U32(1).U32(50).Text("base").span())
                  .status()
                  .IsInvalidArgument());
  EXPECT_TRUE(
      DecodeMetaContextRequest(Bytes().String32("d").U32(1).U32(5000).span()).status().IsNoSpace());
  EXPECT_TRUE(
      DecodeMetaContextRequest(Bytes().String32("d").U32(UINT32_MAX).span()).status().IsNoSpace());
  EXPECT_TRUE(DecodeMetaContextRequest(Bytes().String32("d").U32(0).U16(7).span())
                  .status()
                  .IsInvalidArgument());
}

TEST(RequestHeaderTest, DecodesFieldsAndChecksMagic) {
  Bytes good;
  good.U32(kRequestMagic).U16(kCmdFlagFua).U16(kCmdWrite).U64(0xabcdef).U64(4096).U32(512);
  auto request = DecodeRequestHeader(good.span());
  ASSERT_TRUE(request.ok());
  EXPECT_EQ(request->flags, kCmdFlagFua);
  EXPECT_EQ(request->type, kCmdWrite);
  EXPECT_EQ(request->cookie, 0xabcdefu);
  EXPECT_EQ(request->offset_bytes, 4096u);
  EXPECT_EQ(request->length_bytes, 512u);
  Bytes bad;
  bad.U32(kSimpleReplyMagic).U16(0).U16(kCmdRead).U64(1).U64(0).U32(512);
  EXPECT_TRUE(DecodeRequestHeader(bad.span()).status().IsInvalidArgument());
  EXPECT_TRUE(DecodeRequestHeader(good.span().first(27)).status().IsInvalidArgument());
}

class CheckRequestTest : public ::testing::Test {
 protected:
  TransmissionContext Writable() {
    ExportInfo info;
    info.size_bytes = 1 << 20;
    info.block_size_max_bytes = 64 << 10;
    info.can_fast_zero = false;
    return {info.size_bytes,
            1,
            info.block_size_max_bytes,
            TransmissionFlagsFor(info, true),
            true,
            true};
  }
  uint32_t Error(uint16_t type, uint16_t flags, uint64_t offset, uint32_t length,
                 const TransmissionContext& context) {
    return CheckRequest({flags, type, 1, offset, length}, context).error;
  }
};

TEST_F(CheckRequestTest, AcceptsValidRequests) {
  const auto context = Writable();
  EXPECT_EQ(Error(kCmdRead, 0, 0, 4096, context), kErrorNone);
  EXPECT_EQ(Error(kCmdRead, kCmdFlagDf | kCmdFlagFua, 1000, 17, context), kErrorNone);
  EXPECT_EQ(Error(kCmdWrite, kCmdFlagFua, (1 << 20) - 1, 1, context), kErrorNone);
  EXPECT_EQ(Error(kCmdFlush, 0, 0, 0, context), kErrorNone);
  EXPECT_EQ(Error(kCmdTrim, 0, 0, 1 << 20, context), kErrorNone);
  EXPECT_EQ(Error(kCmdWriteZeroes, kCmdFlagNoHole, 0, 1 << 20, context), kErrorNone);
  EXPECT_EQ(Error(kCmdBlockStatus, kCmdFlagReqOne, 0, 1 << 20, context), kErrorNone);
  EXPECT_EQ(Error(kCmdDisc, 0, 0, 0, context), kErrorNone);
}

TEST_F(CheckRequestTest, RejectsUnknownCommandsAndFlags) {
  const auto context = Writable();
  EXPECT_EQ(Error(kCmdCache, 0, 0, 4096, context), kEINVAL);
  EXPECT_EQ(Error(8, 0, 0, 4096, context), kEINVAL);
  EXPECT_EQ(Error(0xffff, 0, 0, 4096, context), kEINVAL);
  EXPECT_EQ(Error(kCmdRead, kCmdFlagReqOne, 0, 4096, context), kEINVAL);
  EXPECT_EQ(Error(kCmdWrite, kCmdFlagNoHole, 0, 4096, context), kEINVAL);
  EXPECT_EQ(Error(kCmdWriteZeroes, kCmdFlagFastZero, 0, 4096, context), kEINVAL);  // Not sent.
  EXPECT_EQ(Error(kCmdRead, 1u << 15, 0, 4096, context), kEINVAL);
  auto simple = context;
  simple.structured_replies = false;
  simple.base_allocation = false;
  simple.transmission_flags &= ~kTransmissionSendDf;
  EXPECT_EQ(Error(kCmdRead, kCmdFlagDf, 0, 4096, simple), kEINVAL);
  EXPECT_EQ(Error(kCmdBlockStatus, 0, 0, 4096, simple), kEINVAL);
  auto no_context = context;
  no_context.base_allocation = false;
  EXPECT_EQ(Error(kCmdBlockStatus, 0, 0, 4096, no_context), kEINVAL);
}

TEST_F(CheckRequestTest, RejectsWritesToReadOnlyExports) {
  ExportInfo info;
  info.size_bytes = 1 << 20;
  info.read_only = true;
  const TransmissionContext context{
      info.size_bytes, 1, 32 << 20, TransmissionFlagsFor(info, false), false, false};
  EXPECT_EQ(Error(kCmdWrite, 0, 0, 4096, context), kEPERM);
  EXPECT_EQ(Error(kCmdTrim, 0, 0, 4096, context), kEPERM);
  EXPECT_EQ(Error(kCmdWriteZeroes, 0, 0, 4096, context), kEPERM);
  EXPECT_EQ(Error(kCmdRead, 0, 0, 4096, context), kErrorNone);
  EXPECT_EQ(Error(kCmdFlush, 0, 0, 0, context), kErrorNone);
}

TEST_F(CheckRequestTest, RejectsBadLengthsRangesAndAlignment) {
  auto context = Writable();
  EXPECT_EQ(Error(kCmdRead, 0, 0, 0, context), kEINVAL);
  EXPECT_EQ(Error(kCmdTrim, 0, 0, 0, context), kEINVAL);
  EXPECT_EQ(Error(kCmdFlush, 0, 0, 1, context), kEINVAL);
  EXPECT_EQ(Error(kCmdFlush, 0, 8, 0, context), kEINVAL);
  EXPECT_EQ(Error(kCmdRead, 0, 0, (64 << 10) + 1, context), kEOVERFLOW);
  EXPECT_EQ(Error(kCmdWrite, 0, 0, (64 << 10) + 1, context), kEOVERFLOW);
  EXPECT_EQ(Error(kCmdTrim, 0, 0, 1 << 20, context), kErrorNone);  // Not bounded by payload.
  EXPECT_EQ(Error(kCmdRead, 0, (1 << 20) - 1, 2, context), kEINVAL);
  EXPECT_EQ(Error(kCmdRead, 0, UINT64_MAX, 1, context), kEINVAL);  // No wrap-around.
  EXPECT_EQ(Error(kCmdWrite, 0, 1 << 20, 1, context), kENOSPC);
  EXPECT_EQ(Error(kCmdWriteZeroes, 0, UINT64_MAX - 1, 4096, context), kENOSPC);
  EXPECT_EQ(Error(kCmdBlockStatus, 0, 4096, 1 << 20, context), kEINVAL);
  context.block_size_min_bytes = 512;
  EXPECT_EQ(Error(kCmdRead, 0, 512, 1024, context), kErrorNone);
  EXPECT_EQ(Error(kCmdRead, 0, 100, 512, context), kEINVAL);
  EXPECT_EQ(Error(kCmdWrite, 0, 512, 100, context), kEINVAL);
  EXPECT_EQ(Error(kCmdBlockStatus, 0, 100, 100, context), kErrorNone);
}

TEST(TransmissionFlagsTest, FollowsTheExport) {
  ExportInfo info;
  info.can_fast_zero = true;
  const uint16_t writable = TransmissionFlagsFor(info, false);
  EXPECT_EQ(writable, kTransmissionHasFlags | kTransmissionSendFlush | kTransmissionSendFua |
                          kTransmissionSendTrim | kTransmissionSendWriteZeroes |
                          kTransmissionSendFastZero | kTransmissionCanMultiConn);
  EXPECT_TRUE(TransmissionFlagsFor(info, true) & kTransmissionSendDf);
  info.read_only = true;
  EXPECT_EQ(TransmissionFlagsFor(info, false), kTransmissionHasFlags | kTransmissionReadOnly |
                                                   kTransmissionSendFlush |
                                                   kTransmissionCanMultiConn);
}

TEST(EncodeTest, GreetingAndExportNameReply) {
  std::vector<std::byte> out;
  EncodeServerGreeting(out);
  ASSERT_EQ(out.size(), 18u);
  EXPECT_EQ(Load<uint64_t>(out, 0), kNbdMagic);
  EXPECT_EQ(Load<uint64_t>(out, 8), kOptionMagic);
  EXPECT_EQ(Load<uint16_t>(out, 16), kFlagFixedNewstyle | kFlagNoZeroes);
  out.clear();
  EncodeExportNameReply(out, 12345, 0x0103, /*no_zeroes=*/false);
  EXPECT_EQ(out.size(), 134u);
  EXPECT_EQ(Load<uint64_t>(out, 0), 12345u);
  EXPECT_EQ(Load<uint16_t>(out, 8), 0x0103);
  out.clear();
  EncodeExportNameReply(out, 1, 1, /*no_zeroes=*/true);
  EXPECT_EQ(out.size(), 10u);
}

TEST(EncodeTest, TransmissionReplies) {
  std::vector<std::byte> out;
  EncodeSimpleReply(out, 0x1122334455667788, kEPERM);
  ASSERT_EQ(out.size(), 16u);
  EXPECT_EQ(Load<uint32_t>(out, 0), kSimpleReplyMagic);
  EXPECT_EQ(Load<uint32_t>(out, 4), kEPERM);
  EXPECT_EQ(Load<uint64_t>(out, 8), 0x1122334455667788u);

  out.clear();
  EncodeOffsetDataHeader(out, 7, 4096, 512);
  ASSERT_EQ(out.size(), 28u);
  EXPECT_EQ(Load<uint32_t>(out, 0), kStructuredReplyMagic);
  EXPECT_EQ(Load<uint16_t>(out, 4), kReplyFlagDone);
  EXPECT_EQ(Load<uint16_t>(out, 6), kReplyTypeOffsetData);
  EXPECT_EQ(Load<uint32_t>(out, 16), 520u);
  EXPECT_EQ(Load<uint64_t>(out, 20), 4096u);

  out.clear();
  EncodeStructuredError(out, 7, kEINVAL, std::string(1000, 'm'));
  ASSERT_EQ(out.size(), 20u + 6 + kErrorMessageMaxBytes);
  EXPECT_EQ(Load<uint16_t>(out, 6), kReplyTypeError);
  EXPECT_EQ(Load<uint32_t>(out, 16), 6u + kErrorMessageMaxBytes);
  EXPECT_EQ(Load<uint32_t>(out, 20), kEINVAL);
  EXPECT_EQ(Load<uint16_t>(out, 24), kErrorMessageMaxBytes);

  out.clear();
  EncodeStructuredNone(out, 9);
  EXPECT_EQ(out.size(), 20u);

  out.clear();
  const BlockDescriptor descriptors[] = {{4096, kStateHole | kStateZero}, {8192, 0}};
  EncodeBlockStatus(out, 9, kBaseAllocationContextId, descriptors);
  ASSERT_EQ(out.size(), 20u + 4 + 16);
  EXPECT_EQ(Load<uint16_t>(out, 6), kReplyTypeBlockStatus);
  EXPECT_EQ(Load<uint32_t>(out, 16), 20u);
  EXPECT_EQ(Load<uint32_t>(out, 20), kBaseAllocationContextId);
  EXPECT_EQ(Load<uint32_t>(out, 24), 4096u);
  EXPECT_EQ(Load<uint32_t>(out, 28), kStateHole | kStateZero);
  EXPECT_EQ(Load<uint32_t>(out, 32), 8192u);
}

TEST(EncodeTest, OptionReplies) {
  std::vector<std::byte> out;
  EncodeRepServer(out, "disk", "a disk");
  EncodeInfoExport(out, kOptGo, 1 << 20, 0x1ff);
  EncodeInfoBlockSize(out, kOptGo, 1, 4096, 32 << 20);
  EncodeMetaContext(out, kOptSetMetaContext, 1, kBaseAllocationContext);
  EncodeOptionError(out, kOptGo, kRepErrUnknown, "no such export");
  const auto replies = ParseOptionReplies(out);
  ASSERT_EQ(replies.size(), 5u);
  EXPECT_EQ(replies[0].type, kRepServer);
  EXPECT_EQ(Load<uint32_t>(replies[0].payload, 0), 4u);
  EXPECT_EQ(replies[0].payload.size(), 4u + 4 + 6);
  EXPECT_EQ(replies[1].payload.size(), 12u);
  EXPECT_EQ(Load<uint64_t>(replies[1].payload, 2), 1u << 20);
  EXPECT_EQ(replies[2].payload.size(), 14u);
  EXPECT_EQ(Load<uint32_t>(replies[2].payload, 10), 32u << 20);
  EXPECT_EQ(replies[3].type, kRepMetaContext);
  EXPECT_EQ(replies[3].payload.size(), 4u + kBaseAllocationContext.size());
  EXPECT_EQ(replies[4].type, kRepErrUnknown);
}

// ---- Negotiator ----

class NegotiatorTest : public ::testing::Test {
 protected:
  NegotiatorTest() : provider_(io_context_), negotiator_(provider_) {
    ExportInfo disk;
    disk.name = "disk";
    disk.description = "the test disk";
    disk.size_bytes = 1 << 20;
    provider_.Add(disk);
    ExportInfo other;
    other.name = "other";
    other.size_bytes = 4096;
    other.read_only = true;
    provider_.Add(other);
    EXPECT_TRUE(negotiator_.OnClientFlags(Bytes().U32(kClientFlagsKnown).span()).ok());
  }

  NegotiationStep Option(uint32_t option, const Bytes& payload) {
    return negotiator_.OnOption({option, static_cast<uint32_t>(payload.vector().size())},
                                payload.span());
  }
  static Bytes GoPayload(std::string_view name, const std::vector<uint16_t>& infos = {}) {
    Bytes payload;
    payload.String32(name).U16(static_cast<uint16_t>(infos.size()));
    for (uint16_t info : infos) payload.U16(info);
    return payload;
  }
  static Bytes MetaPayload(std::string_view name, const std::vector<std::string>& queries) {
    Bytes payload;
    payload.String32(name).U32(static_cast<uint32_t>(queries.size()));
    for (const auto& query : queries) payload.String32(query);
    return payload;
  }

  asio::io_context io_context_;
  testing::MemoryExportProvider provider_;
  Negotiator negotiator_;
};

TEST_F(NegotiatorTest, UnknownOptionGetsUnsupAndHaggingContinues) {
  for (uint32_t option : {kOptStartTls, 4u, 11u, 0xdeadu}) {
    const auto step = Option(option, Bytes().U32(1));
    EXPECT_EQ(step.next, NegotiationStep::Next::kContinue);
    const auto replies = ParseOptionReplies(step.reply);
    ASSERT_EQ(replies.size(), 1u);
    EXPECT_EQ(replies[0].option, option);
    EXPECT_EQ(replies[0].type, kRepErrUnsup);
  }
  EXPECT_EQ(Option(kOptGo, GoPayload("disk")).next, NegotiationStep::Next::kTransmission);
}

TEST_F(NegotiatorTest, ListNamesEveryExport) {
  const auto step = Option(kOptList, Bytes());
  const auto replies = ParseOptionReplies(step.reply);
  ASSERT_EQ(replies.size(), 3u);
  EXPECT_EQ(replies[0].type, kRepServer);
  EXPECT_EQ(replies[1].type, kRepServer);
  EXPECT_EQ(replies[2].type, kRepAck);
  EXPECT_EQ(ParseOptionReplies(Option(kOptList, Bytes().U32(0)).reply)[0].type, kRepErrInvalid);
}

TEST_F(NegotiatorTest, InfoDescribesWithoutEnteringTransmission) {
  const auto step = Option(kOptInfo, GoPayload("disk", {kInfoName, kInfoDescription}));
  EXPECT_EQ(step.next, NegotiationStep::Next::kContinue);
  const auto replies = ParseOptionReplies(step.reply);
  ASSERT_EQ(replies.size(), 5u);  // EXPORT, NAME, DESCRIPTION, BLOCK_SIZE, ACK.
  EXPECT_EQ(Load<uint16_t>(replies[0].payload, 0), kInfoExport);
  EXPECT_EQ(Load<uint64_t>(replies[0].payload, 2), 1u << 20);
  EXPECT_EQ(Load<uint16_t>(replies[1].payload, 0), kInfoName);
  EXPECT_EQ(Load<uint16_t>(replies[2].payload, 0), kInfoDescription);
  EXPECT_EQ(Load<uint16_t>(replies[3].payload, 0), kInfoBlockSize);
  EXPECT_EQ(replies[4].type, kRepAck);
}

TEST_F(NegotiatorTest, GoErrorsKeepTheHandshakeGoing) {
  EXPECT_EQ(ParseOptionReplies(Option(kOptGo, GoPayload("missing")).reply)[0].type, kRepErrUnknown);
  EXPECT_EQ(ParseOptionReplies(Option(kOptGo, Bytes().U32(3).Text("di")).reply)[0].type,
            kRepErrInvalid);
  EXPECT_EQ(ParseOptionReplies(Option(kOptGo, GoPayload(std::string(5000, 'x'))).reply)[0].type,
            kRepErrTooBig);
  const auto step = Option(kOptGo, GoPayload("other"));
  ASSERT_EQ(step.next, NegotiationStep::Next::kTransmission);
  const NegotiatedSession session = negotiator_.TakeSession();
  EXPECT_EQ(session.info.name, "other");
  EXPECT_TRUE(session.transmission_flags & kTransmissionReadOnly);
  EXPECT_FALSE(session.structured_replies);
}

TEST_F(NegotiatorTest, MetaContextNeedsStructuredReplies) {
  EXPECT_EQ(ParseOptionReplies(
                Option(kOptSetMetaContext, MetaPayload("disk", {"base:allocation"})).reply)[0]
                .type,
            kRepErrInvalid);
  EXPECT_EQ(ParseOptionReplies(Option(kOptStructuredReply, Bytes().U16(0)).reply)[0].type,
            kRepErrInvalid);
  EXPECT_EQ(ParseOptionReplies(Option(kOptStructuredReply, Bytes()).reply)[0].type, kRepAck);
  const auto set = ParseOptionReplies(
      Option(kOptSetMetaContext, MetaPayload("disk", {"qemu:dirty", "base:allocation"})).reply);
  ASSERT_EQ(set.size(), 2u);
  EXPECT_EQ(set[0].type, kRepMetaContext);
  EXPECT_EQ(Load<uint32_t>(set[0].payload, 0), kBaseAllocationContextId);
  EXPECT_EQ(set[1].type, kRepAck);
  // LIST with no query lists everything; an unknown export is an error.
  EXPECT_EQ(ParseOptionReplies(Option(kOptListMetaContext, MetaPayload("disk", {})).reply).size(),
            2u);
  EXPECT_EQ(ParseOptionReplies(Option(kOptListMetaContext, MetaPayload("x", {})).reply)[0].type,
            kRepErrUnknown);
  ASSERT_EQ(Option(kOptGo, GoPayload("disk")).next, NegotiationStep::Next::kTransmission);
  const NegotiatedSession session = negotiator_.TakeSession();
  EXPECT_TRUE(session.structured_replies);
  EXPECT_TRUE(session.base_allocation);
  EXPECT_TRUE(session.transmission_flags & kTransmissionSendDf);
}

TEST_F(NegotiatorTest, MetaContextForAnotherExportIsDropped) {
  ASSERT_EQ(ParseOptionReplies(Option(kOptStructuredReply, Bytes()).reply)[0].type, kRepAck);
  Option(kOptSetMetaContext, MetaPayload("other", {"base:allocation"}));
  ASSERT_EQ(Option(kOptGo, GoPayload("disk")).next, NegotiationStep::Next::kTransmission);
  EXPECT_FALSE(negotiator_.TakeSession().base_allocation);
}

TEST_F(NegotiatorTest, ExportNameFailuresClose) {
  EXPECT_EQ(Option(kOptExportName, Bytes().Text("missing")).next, NegotiationStep::Next::kClose);
  const auto step = Option(kOptExportName, Bytes().Text("disk"));
  ASSERT_EQ(step.next, NegotiationStep::Next::kTransmission);
  EXPECT_EQ(step.reply.size(), 10u);  // NO_ZEROES was negotiated.
}

TEST_F(NegotiatorTest, AbortAcksAndEndsWithoutError) {
  const auto step = Option(kOptAbort, Bytes());
  EXPECT_EQ(step.next, NegotiationStep::Next::kClose);
  EXPECT_TRUE(step.close_reason.empty());
  EXPECT_EQ(ParseOptionReplies(step.reply)[0].type, kRepAck);
}

TEST_F(NegotiatorTest, EndlessHagglingIsCut) {
  for (uint32_t i = 0; i < kHandshakeOptionsMax; ++i) {
    ASSERT_EQ(Option(kOptList, Bytes()).next, NegotiationStep::Next::kContinue);
  }
  const auto step = Option(kOptList, Bytes());
  EXPECT_EQ(step.next, NegotiationStep::Next::kClose);
  EXPECT_FALSE(step.close_reason.empty());
}

}  // namespace
}  // namespace weft::nbd
