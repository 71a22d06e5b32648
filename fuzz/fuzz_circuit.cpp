// libFuzzer harness: circuit files, EAP-IG / MIB JSON with edgewise's metadata (circuit_read).
// The input is the file's text, read through an in-memory file; an accepted circuit must be
// consistent with its graph (one score and flag per pair, flags only on real edges), and, when
// its graph has at most 2^20 score entries (so one exec stays fast), is pruned, counted and drawn
// as Graphviz source (circuit_dot), which touches every entry, and given to the viewer (its page's
// data and the circuit-tracer graph, issue 28). The same bytes also go to the viewer's curve CSV
// reader (read_view_curve): the viewer's two inputs in one harness.
#include <cstdint>
#include <cstdlib>

#include "edgewise/circuit.h"
#include "edgewise/view.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ew_fuzz::MemFile file("circuit.json");
  const std::string& path = file.write(data, size);
  ew_fuzz::accepts([&] {
    edgewise::Circuit c = edgewise::circuit_read(path);
    const edgewise::Graph g = c.graph();
    const size_t n = static_cast<size_t>(g.n_sources() * g.n_readers());
    if (c.scores.size() != n || c.in_graph.size() != n) std::abort();
    const std::vector<uint8_t> real = g.real_edges();
    for (size_t k = 0; k < n; ++k)
      if (c.in_graph[k] && !real[k]) std::abort();
    if (n > (size_t{1} << 20)) return;
    ew_fuzz::sink(edgewise::circuit_dot(c).size());
    c.prune();
    ew_fuzz::sink(static_cast<uint64_t>(c.n_edges_in()));
    ew_fuzz::sink(c.nodes_in_graph().size());
    ew_fuzz::sink(edgewise::circuit_view_html({{"fuzz", c}}).size());
    ew_fuzz::sink(edgewise::circuit_tracer_graph(c, "fuzz").dump().size());
  });
  ew_fuzz::accepts([&] {
    const edgewise::ViewCurve curve = edgewise::read_view_curve(path);
    if (curve.x.size() != curve.y.size() || curve.x.empty()) std::abort();
  });
  return 0;
}
