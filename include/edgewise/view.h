// The interactive circuit viewer: one self-contained HTML file (page, script and data inline; no
// network) showing one circuit or comparing several over the same graph -- nodes by layer, q/k/v
// ports, edges coloured by sign (or by membership when comparing), sliders for the number of
// edges and a score threshold, hover, paths through a clicked node, search, zoom and pan, the
// file's metadata and a faithfulness curve, PNG / SVG / circuit-tracer graph JSON export.
// docs/VIEWER.md. Torch-free.
//
//   ViewInput a{"acdc", circuit_read("acdc.json")}, b{"eap-ig", circuit_read("eap.json")};
//   write_file_atomic("cmp.html", circuit_view_html({a, b}));
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "edgewise/circuit.h"

namespace edgewise {

struct ViewInput {
  std::string name;  ///< shown in the page (the file's stem)
  Circuit circuit;
};

/// A faithfulness curve for the page: x (edges in the circuit) and y (faithfulness).
struct ViewCurve {
  std::vector<double> x, y;
  std::string x_name = "edges", y_name = "faithfulness";
};

/// Reads the curve CSV `discover --curve` writes (columns fraction, edges, edges_after_prune,
/// metric, faithfulness; '#' lines are comments): x = edges_after_prune (else edges, else
/// fraction), y = faithfulness. Errors name the file and line.
ViewCurve read_view_curve(const std::string& path);

struct ViewOptions {
  std::optional<ViewCurve> curve;  ///< the side panel's faithfulness curve
  /// Edges drawn when the page opens (the top-n slider's start): -1 = the circuits' in-graph
  /// edges (500 when none is in a circuit).
  int64_t show = -1;
};

/// The page for `circuits` (at least one; every one over the same graph, else an Error naming
/// the first that differs).
std::string circuit_view_html(const std::vector<ViewInput>& circuits, const ViewOptions& opt = {});

/// The data the page embeds, as JSON: graph shape, sources and readers (name, kind, layer,
/// head), the real edges (src, dst indices) and per circuit its name, metadata, every edge's
/// score and membership; the curve and the initial number of edges drawn.
nlohmann::json circuit_view_data(const std::vector<ViewInput>& circuits, const ViewOptions& opt = {});

/// The circuit's in-graph edges in circuit-tracer's / Neuronpedia's graph JSON (the schema of
/// circuit_tracer.frontend.graph_models.Model: metadata, qParams, nodes, links), one node per
/// source and the logits, one link per in-circuit edge and node it feeds (a grouped k / v reader
/// feeds each head of its group), weight = the edge's score.
nlohmann::json circuit_tracer_graph(const Circuit& c, const std::string& slug);

}  // namespace edgewise
