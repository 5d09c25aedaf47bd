#pragma once
/// @file Versions a plugin is checked against when the host loads it.

/// assay release (semver). Recorded in every run store.
#define ASSAY_VERSION "0.1.0"

/// Binary interface version of the SDK. Bumped whenever a header in assay/ changes a class layout,
/// a virtual function or a signature; the host refuses plugins built against another value.
#define ASSAY_SDK_ABI 4  // 2: Model::forward_with/hidden_states, Task prompts/score; 3: CUDA-graph capture
                         // (capturable(), Algorithm::prepare, StepOutput::tensor_metrics); 4: NormOptions::autocast_output
