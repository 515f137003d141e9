# weft_add_test(NAME SOURCES... LIBS ...): one GoogleTest binary registered with CTest.
# Each test binary is one CTest entry so that a failure names the binary to re-run by hand.
function(weft_add_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gtest_main)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES TIMEOUT 600)
endfunction()
