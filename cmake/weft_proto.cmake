# weft_add_proto(TARGET name PROTOS a.proto ... [LIBS ...]): a static library of the C++ code
# protoc generates for the given .proto files (wire and metadata records, DESIGN.md). Includes are
# by path from src/ (`#include "rpc/rpc.pb.h"` for src/rpc/rpc.proto), and .proto imports are
# relative to src/ too.
find_package(Protobuf REQUIRED)

function(weft_add_proto)
  cmake_parse_arguments(ARG "" "TARGET" "PROTOS;LIBS" ${ARGN})
  set(sources)
  set(src_root ${PROJECT_SOURCE_DIR}/src)
  set(out_root ${PROJECT_BINARY_DIR}/proto)
  foreach(proto ${ARG_PROTOS})
    get_filename_component(absolute ${proto} ABSOLUTE)
    file(RELATIVE_PATH relative ${src_root} ${absolute})
    string(REGEX REPLACE "\\.proto$" "" stem ${relative})
    set(generated ${out_root}/${stem}.pb.cc ${out_root}/${stem}.pb.h)
    add_custom_command(
      OUTPUT ${generated}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${out_root}
      COMMAND protobuf::protoc --cpp_out=${out_root} -I ${src_root} ${absolute}
      DEPENDS ${absolute} protobuf::protoc
      COMMENT "protoc ${relative}"
      VERBATIM)
    list(APPEND sources ${out_root}/${stem}.pb.cc)
  endforeach()
  add_library(${ARG_TARGET} STATIC ${sources})
  target_include_directories(${ARG_TARGET} PUBLIC ${out_root})
  target_link_libraries(${ARG_TARGET} PUBLIC protobuf::libprotobuf ${ARG_LIBS})
  # Generated code is not ours to warn about.
  target_compile_options(${ARG_TARGET} PRIVATE -Wno-unused-parameter -Wno-deprecated-declarations)
endfunction()
