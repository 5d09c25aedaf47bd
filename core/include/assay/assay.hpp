#pragma once
/// @file Everything a plugin needs.
#include <assay/components.hpp>
#include <assay/log.hpp>
#include <assay/multiple_choice.hpp>
#include <assay/answer_details.hpp>
#include <assay/options.hpp>
#include <assay/plugin.hpp>
#include <assay/recorder.hpp>
#include <assay/rollout.hpp>
#include <assay/sampler.hpp>
#include <assay/sequences.hpp>
#include <assay/version.hpp>
