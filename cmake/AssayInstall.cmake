# Installs the host, the SDK headers, the plugins and a CMake package for out-of-tree plugins:
#   find_package(assay REQUIRED)
#   assay_add_plugin(my_plugin SOURCES my_plugin.cpp)
include(CMakePackageConfigHelpers)
install(TARGETS assay RUNTIME DESTINATION bin)
install(TARGETS assay_sdk EXPORT assayTargets LIBRARY DESTINATION lib)
install(DIRECTORY core/include/assay DESTINATION include)
install(DIRECTORY analysis/assay_analysis DESTINATION share/assay/analysis PATTERN __pycache__ EXCLUDE)
install(EXPORT assayTargets NAMESPACE assay:: DESTINATION lib/cmake/assay)
configure_package_config_file(cmake/assayConfig.cmake.in ${CMAKE_BINARY_DIR}/assayConfig.cmake
  INSTALL_DESTINATION lib/cmake/assay)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/assayConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/assayConfig.cmake ${CMAKE_BINARY_DIR}/assayConfigVersion.cmake
  cmake/AssayPlugin.cmake cmake/AssayDependencies.cmake DESTINATION lib/cmake/assay)
