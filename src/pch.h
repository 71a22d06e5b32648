// Precompiled header for every translation unit that uses libtorch. Public headers never
// include torch/torch.h (it costs ~10 s per file to parse); sources get it from here.
#pragma once
#include <torch/torch.h>
#include <ATen/ATen.h>
#include <string>
#include <vector>
#include <map>
#include <memory>
#include <optional>
#include <functional>
