// A circuit: per-edge scores and an in-circuit flag over a Graph, plus the metadata that makes a
// result reproducible (model, task, method and every option, metrics, edgewise version).
// On disk it is EAP-IG's / MIB's JSON — {"cfg": {...}, "nodes": {name: {"in_graph"}},
// "edges": {name: {"score", "in_graph"}}} — with an extra "edgewise" object those tools ignore,
// so circuits can be exchanged. Reading it back round-trips exactly (scores are float32 and
// written with enough digits). Writes are atomic (temporary file, then rename).
// Torch-free; scores are plain row-major [n_src, n_dst] float vectors.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "edgewise/graph.h"

namespace edgewise {

struct Circuit {
  GraphShape shape;
  bool split_qkv = true;
  int64_t d_model = 0;
  std::vector<float> scores;      ///< [n_src * n_dst], row-major; 0 off the real edges
  std::vector<uint8_t> in_graph;  ///< [n_src * n_dst]; only real edges may be 1
  nlohmann::json meta = nlohmann::json::object();  ///< model, task, method, options, metrics

  /// An empty circuit (no edge in) over the graph of `shape`.
  static Circuit empty(GraphShape shape, bool split_qkv, int64_t d_model);
  Graph graph() const { return Graph(shape, split_qkv); }

  int64_t n_edges_in() const;
  /// Source nodes with at least one in-circuit out-edge (input counts like any other source).
  std::vector<uint8_t> nodes_in_graph() const;
  /// Removes edges that lie on no path input -> ... -> logits inside the circuit (EAP-IG's
  /// prune): a source needs an in-circuit in-edge (input excepted) and an in-circuit out-edge.
  void prune();
};

/// Writes `c` as JSON to `path` atomically. Errors name the path.
void circuit_write(const Circuit& c, const std::string& path);
/// Reads a circuit file written by edgewise or by EAP-IG's Graph.to_json. Errors name the file
/// and, for a bad edge, the edge.
Circuit circuit_read(const std::string& path);

/// Graphviz source: nodes ranked by layer (input at the top, logits at the bottom), in-circuit
/// edges with pen width proportional to |score|, colour by sign, q/k/v readers as line styles.
std::string circuit_dot(const Circuit& c);
/// Renders circuit_dot through Graphviz `dot` into an SVG at `path` (atomically).
void circuit_draw_svg(const Circuit& c, const std::string& path);

/// Writes `content` to `path` through a temporary file in the same directory and a rename, so
/// readers never see a half-written file. Errors name the path.
void write_file_atomic(const std::string& path, const std::string& content);

}  // namespace edgewise
