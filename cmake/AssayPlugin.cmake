# assay_add_plugin(NAME SOURCES src... [TESTS test_src...])
#
# Builds plugin NAME as a loadable module `assay-NAME.so` into <build>/lib/assay/plugins (where the host
# looks in a build tree, as in an install tree). TESTS are GoogleTest sources compiled into the project's
# test executable (first-party plugins only). Used for first-party and third-party plugins alike.
function(assay_add_plugin NAME)
  cmake_parse_arguments(ARG "" "" "SOURCES;TESTS" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "assay_add_plugin(${NAME}): SOURCES is required")
  endif()
  add_library(${NAME} MODULE ${ARG_SOURCES})
  if(TARGET assay::sdk)
    target_link_libraries(${NAME} PRIVATE assay::sdk)
  else()
    message(FATAL_ERROR "assay_add_plugin(${NAME}): no assay::sdk target; call find_package(assay) first")
  endif()
  set_target_properties(${NAME} PROPERTIES
    PREFIX "" OUTPUT_NAME "assay-${NAME}"
    CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON
    LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lib/assay/plugins)
  if(TARGET assay_plugin_pch)  # in-tree only: LibTorch headers precompiled once for every plugin
    target_precompile_headers(${NAME} REUSE_FROM assay_plugin_pch)
  endif()
  if(ARG_TESTS)
    foreach(_src IN LISTS ARG_TESTS)
      get_filename_component(_abs ${_src} ABSOLUTE)
      set_property(GLOBAL APPEND PROPERTY ASSAY_PLUGIN_TESTS ${_abs})
      set_property(GLOBAL APPEND PROPERTY ASSAY_PLUGIN_TESTS_${NAME} ${_abs})
    endforeach()
  endif()
  set_property(GLOBAL APPEND PROPERTY ASSAY_PLUGINS ${NAME})
  install(TARGETS ${NAME} LIBRARY DESTINATION lib/assay/plugins)
endfunction()
