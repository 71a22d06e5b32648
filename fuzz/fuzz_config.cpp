// libFuzzer harness: Hugging Face config.json (hf_config_parse, the torch-free parser behind
// config_from_hf_json). The input is the file's text; an accepted configuration must describe
// a buildable model (the checks of hf_config_validate hold).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "edgewise/config_json.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  ew_fuzz::accepts([&] {
    const edgewise::HfConfig c = edgewise::hf_config_parse("fuzz/config.json", text);
    if (c.n_layers <= 0 || c.d_model <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 || c.d_head <= 0 ||
        c.d_mlp <= 0 || c.vocab_size <= 0 || c.n_ctx <= 0 || c.n_heads % c.n_kv_heads != 0)
      std::abort();
    if (c.act != "gelu_new" && c.act != "gelu" && c.act != "silu" && c.act != "relu") std::abort();
    if (c.n_outputs < 0 || (c.model_type == "tracr" && c.n_outputs == 0)) std::abort();
  });
  return 0;
}
