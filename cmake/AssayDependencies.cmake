# Finds every third-party dependency. Shared by the project build and by the installed assayConfig.cmake
# (ASSAY_SDK_ONLY: only what a plugin needs).

# A CUDA LibTorch otherwise probes the local GPU to pick architectures (and fails where there is none).
if(NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST} AND NOT TORCH_CUDA_ARCH_LIST)
  set(TORCH_CUDA_ARCH_LIST "9.0a")  # H100/H200; override with the environment variable
endif()

# LibTorch: any >= 2.4 given through CMAKE_PREFIX_PATH / Torch_DIR, else the one of python3's torch wheel.
find_package(Torch 2.4 QUIET)
if(NOT Torch_FOUND)
  execute_process(COMMAND python3 -c "import torch; print(torch.utils.cmake_prefix_path)"
                  OUTPUT_VARIABLE _assay_torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE
                  RESULT_VARIABLE _assay_torch_rc ERROR_QUIET)
  if(NOT _assay_torch_rc EQUAL 0)
    message(FATAL_ERROR "LibTorch not found. Pass -DCMAKE_PREFIX_PATH=/path/to/libtorch (>= 2.4) or "
                        "install the pinned torch wheel: bash tools/setup.sh")
  endif()
  list(APPEND CMAKE_PREFIX_PATH ${_assay_torch_prefix})
  find_package(Torch 2.4 REQUIRED)
endif()
if(TARGET torch_cuda OR CAFFE2_USE_CUDA)
  set(ASSAY_TORCH_HAS_CUDA ON)
else()
  set(ASSAY_TORCH_HAS_CUDA OFF)
endif()

if(ASSAY_SDK_ONLY)
  return()
endif()

find_package(Boost 1.74 REQUIRED)
find_package(spdlog REQUIRED)
find_package(HDF5 REQUIRED COMPONENTS C CXX)
find_package(Threads REQUIRED)

# Header-only libraries, from Debian's packages or a carried copy in .deps/ (the GPU image lacks them).
find_path(ASSAY_TOMLPP_INCLUDE toml++/toml.h PATHS ${CMAKE_SOURCE_DIR}/.deps/usr/include)
find_path(ASSAY_CLI11_INCLUDE CLI/CLI.hpp PATHS ${CMAKE_SOURCE_DIR}/.deps/usr/include)
if(NOT ASSAY_TOMLPP_INCLUDE OR NOT ASSAY_CLI11_INCLUDE)
  message(FATAL_ERROR "TOML++ or CLI11 headers not found: bash tools/setup.sh installs them")
endif()
add_library(assay_tomlpp INTERFACE)
target_include_directories(assay_tomlpp SYSTEM INTERFACE ${ASSAY_TOMLPP_INCLUDE})
target_compile_definitions(assay_tomlpp INTERFACE TOML_HEADER_ONLY=1 TOML_EXCEPTIONS=1)
add_library(assay_cli11 INTERFACE)
target_include_directories(assay_cli11 SYSTEM INTERFACE ${ASSAY_CLI11_INCLUDE})

if(ASSAY_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
