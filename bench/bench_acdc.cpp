// ACDC's wall time, evaluations and peak memory on one model and prompts (issue 6's
// benchmarks: against auto-circuit's ACDC on the same exported model and prompts.json, and
// classic vs group testing vs rollback on the default model). Prints one JSON object (and
// writes it to OUT when given) with the kept edges by name, so bench/autocircuit_acdc.py can
// compare the two edge sets. A benchmark, not a test; results in docs/BENCHMARKS.md.
//
//   bench_acdc [MODEL] [task | ids.json] [N] [tau] [threads] [classic|group|rollback] [OUT]
//
// KL to the clean run at the prediction position, resample ablation, fp32, all N prompts in
// one batch (as auto-circuit's ACDC uses its first batch).
#include <ATen/Parallel.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "bench_data.h"
#include "bench_util.h"
#include "edgewise/acdc.h"
#include "edgewise/circuit.h"
#include "edgewise/error.h"
#include "edgewise/memory.h"
#include "edgewise/model.h"

int main(int argc, char** argv) {
  const std::string spec = argc > 1 ? argv[1] : "", task = argc > 2 ? argv[2] : "ioi";
  const int64_t N = argc > 3 ? std::stoll(argv[3]) : 20;
  const double tau = argc > 4 ? std::stod(argv[4]) : 0.01;
  const int threads = argc > 5 ? std::stoi(argv[5]) : 0;
  const std::string mode = argc > 6 ? argv[6] : "classic", out = argc > 7 ? argv[7] : "";
  if (threads > 0) at::set_num_threads(threads);
  edgewise::tune_allocator();
  try {
    auto [m, g, b] = bench::load(spec, task, N);
    edgewise::AcdcOptions o;
    o.tau = tau;
    o.mode = edgewise::acdc_mode_from_string(mode);
    edgewise::reset_peak_resident();
    const int64_t rss0 = edgewise::resident_kib();
    edgewise::AcdcResult r;
    const double secs = bench::seconds([&] { r = edgewise::acdc(m, g, b, o); });
    nlohmann::json kept = nlohmann::json::array();
    for (int64_t s = 0; s < g.n_sources(); ++s)
      for (int64_t d = 0; d < g.n_readers(); ++d)
        if (r.kept[s][d].item<bool>()) kept.push_back(g.edge_name(s, d));
    nlohmann::json j = {{"model", spec.empty() ? m.source().origin : spec}, {"task", task}, {"examples", N}, {"tokens", b.clean.size(1)},
                        {"tau", tau}, {"mode", mode}, {"threads", at::get_num_threads()}, {"seconds", secs},
                        {"evaluations", r.evaluations}, {"passes", r.passes}, {"skipped", r.skipped},
                        {"last_position_evaluations", r.last_position_evaluations}, {"edges_total", g.n_edges()},
                        {"kept", kept.size()}, {"metric_full", r.metric_full}, {"metric_final", r.metric_final},
                        {"peak_rss_mib", edgewise::peak_resident_kib() / 1024.0},
                        {"peak_growth_mib", (edgewise::peak_resident_kib() - rss0) / 1024.0},
                        {"kept_edges", kept}};
    nlohmann::json order = nlohmann::json::array();  // the visit order (include/edgewise/acdc.h)
    for (int64_t d = g.n_readers() - 1; d >= 0; --d)
      for (int64_t s = g.reader_fan_in(d) - 1; s >= 0; --s) order.push_back(g.edge_name(s, d));
    j["order"] = order;
    nlohmann::json brief = j;
    brief.erase("order");
    std::printf("%s\n", brief.dump().c_str());
    if (!out.empty()) edgewise::write_file_atomic(out, j.dump(1));
  } catch (const edgewise::Error& e) {
    std::fprintf(stderr, "bench_acdc: %s\n", e.what());
    return 1;
  }
  return 0;
}
