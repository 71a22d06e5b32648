// edgewise._core: the library's API for Python. Each function converts its arguments, releases
// the GIL, calls the library and converts the result; the computation is the library's (the
// command line calls the same functions, so both give the same numbers). The friendly layer —
// keyword defaults, docstrings, progress bars, networkx — is python/edgewise/__init__.py.
//
// Long calls poll for Ctrl-C: between units of work for the methods that checkpoint (ACDC, Edge
// Pruning, path patching: the method stops, writes its checkpoint, and KeyboardInterrupt is
// raised), and at every progress report for the others (their work is abandoned). A Python
// metric or progress callable is called with the GIL held.
#include <torch/extension.h>

#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "edgewise/distributed.h"
#include "edgewise/circuit.h"
#include "edgewise/circuit_tuning.h"
#include "edgewise/dataset.h"
#include "edgewise/discover.h"
#include "edgewise/error.h"
#include "edgewise/evaluate.h"
#include "edgewise/memory.h"
#include "edgewise/graph.h"
#include "edgewise/metrics.h"
#include "edgewise/model.h"
#include "edgewise/patch.h"
#include "edgewise/roc.h"
#include "edgewise/view.h"
#include "edgewise/tasks.h"

namespace py = pybind11;
using namespace edgewise;

namespace {

// ---- errors ---------------------------------------------------------------------------------

// Thrown from a progress report when Ctrl-C arrived during a method that cannot stop cleanly.
struct Interrupted : std::exception {
  const char* what() const noexcept override { return "interrupted"; }
};

[[noreturn]] void raise_keyboard_interrupt(const std::string& msg) {
  PyErr_SetString(PyExc_KeyboardInterrupt, msg.c_str());
  throw py::error_already_set();
}

// The Python type of an edgewise::Error: a file that is not there is FileNotFoundError, an
// unsupported model or format NotImplementedError, anything else the caller gave ValueError.
PyObject* error_type(const std::string& msg) {
  for (const char* s : {"no such", "does not exist", "cannot open", "not found in the local"})
    if (msg.find(s) != std::string::npos) return PyExc_FileNotFoundError;
  for (const char* s : {"unsupported architecture", "not supported", "is refused"})
    if (msg.find(s) != std::string::npos) return PyExc_NotImplementedError;
  return PyExc_ValueError;
}

// ---- JSON <-> Python --------------------------------------------------------------------------

py::object to_python(const nlohmann::json& j) { return py::module_::import("json").attr("loads")(j.dump()); }

nlohmann::json to_json(const py::handle& o) {
  return nlohmann::json::parse(py::module_::import("json").attr("dumps")(o).cast<std::string>());
}

// ---- Ctrl-C and progress ----------------------------------------------------------------------

// What a long call shares with its callbacks: the Python progress callable and whether Ctrl-C
// arrived. Callbacks run on the calling thread (the library's loops), with the GIL released
// around them; they take it back to look at signals and call Python.
struct CallContext {
  py::object progress;  // None or callable(stage, done, total, figures: dict)
  std::atomic<bool> interrupted{false};
  bool stoppable = false;  // the method polls RunControl::stop

  // True when Ctrl-C arrived (the Python handler's exception is cleared and remembered).
  bool poll() {
    if (interrupted) return true;
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) {
      PyErr_Clear();
      interrupted = true;
    }
    return interrupted;
  }
  void report(const ProgressEvent& e) {
    {
      py::gil_scoped_acquire gil;
      if (!progress.is_none()) {
        py::dict figures;
        for (const auto& [k, v] : e.figures) figures[py::str(k)] = v;
        try {
          progress(e.stage, e.done, e.total, figures);
        } catch (py::error_already_set& err) {
          // Ctrl-C landed while the callable ran (Python raised it there): it is ours to handle.
          if (!err.matches(PyExc_KeyboardInterrupt)) throw;
          interrupted = true;
        }
      }
    }
    if (poll() && !stoppable) throw Interrupted();
  }
  ProgressFn progress_fn() {
    return [this](const ProgressEvent& e) { report(e); };
  }
  std::function<bool()> stop_fn() {
    return [this] { return poll(); };
  }
};

// ---- data ----------------------------------------------------------------------------------------

std::vector<std::string> strings_of(const py::handle& v, const std::string& where, const char* key) {
  if (v.is_none()) return {};
  if (py::isinstance<py::str>(v)) return {v.cast<std::string>()};
  std::vector<std::string> out;
  try {
    for (const auto& x : v) out.push_back(py::cast<std::string>(x));
  } catch (const py::cast_error&) {
    fail(where, std::string("\"") + key + "\" must be a string or a list of strings");
  }
  return out;
}

// Records (dicts with clean, corrupted, correct, incorrect, split) as a dataset, checked as a
// file is: every bad record — malformed, or answers the metrics cannot use — in one Error, or
// skipped with skip_bad. "records:3" is the third record, as "file:3" is a file's third line.
Dataset dataset_from_records(const py::list& records, const Model& model, bool skip_bad, const std::string& name) {
  Dataset ds;
  ds.name = name;
  ds.description = "records " + name;
  std::vector<std::pair<int64_t, std::string>> bad;  // (record number, note)
  for (size_t i = 0; i < records.size(); ++i) {
    const int64_t line = static_cast<int64_t>(i) + 1;
    const std::string where = name + ":" + std::to_string(line);
    try {
      if (!py::isinstance<py::dict>(records[i])) fail(where, "expected a dict with clean, corrupted, correct");
      const py::dict d = records[i].cast<py::dict>();
      Example ex;
      for (const char* k : {"clean", "corrupted"}) {
        if (!d.contains(k) || !py::isinstance<py::str>(d[k])) fail(where, std::string("missing string field \"") + k + "\"");
      }
      ex.clean = d["clean"].cast<std::string>();
      ex.corrupted = d["corrupted"].cast<std::string>();
      if (!d.contains("correct")) fail(where, "missing \"correct\" (a string or a list of strings)");
      ex.correct = strings_of(d["correct"], where, "correct");
      if (d.contains("incorrect")) ex.incorrect = strings_of(d["incorrect"], where, "incorrect");
      if (d.contains("split")) ex.split = py::str(d["split"]).cast<std::string>();
      if (ex.clean.empty() || ex.corrupted.empty()) fail(where, "empty prompt");
      if (!ex.split.empty() && ex.split != "train" && ex.split != "validation")
        fail(where, "split must be \"train\" or \"validation\", found \"" + ex.split + "\"");
      ex.line = line;
      ds.examples.push_back(std::move(ex));
    } catch (const Error& e) {
      bad.push_back({line, e.what()});
    }
  }
  // The answer checks, collected (skip mode) so that they join the report above.
  LoadDataOptions collect;
  collect.skip_bad = true;
  if (!ds.examples.empty()) {
    try {
      check_answers(ds, model.tokenizer(), collect);
    } catch (const Error&) {  // every record bad: the notes are in skip_notes, reported below
      if (!ds.examples.empty() || ds.skip_notes.empty()) throw;
    }
  }
  for (size_t k = 0; k < ds.skip_notes.size(); ++k) {
    const std::string& note = ds.skip_notes[k];
    const size_t colon = note.find(':', name.size());
    bad.push_back({colon == std::string::npos ? 0 : std::atoll(note.c_str() + colon + 1), note});
  }
  ds.skip_notes.clear();
  std::stable_sort(bad.begin(), bad.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  if (!bad.empty() && !skip_bad) {
    std::string msg = bad.size() == 1 ? bad[0].second : name + ": " + std::to_string(bad.size()) + " bad records:";
    if (bad.size() > 1)
      for (const auto& b : bad) msg += "\n  " + b.second;
    throw Error(msg);
  }
  ds.skipped = static_cast<int64_t>(bad.size());
  for (auto& b : bad) ds.skip_notes.push_back(b.second);
  if (ds.examples.empty()) fail(name, "no usable records");
  return ds;
}

py::list examples_of(const Dataset& ds) {
  py::list out;
  for (const Example& e : ds.examples) {
    py::dict d;
    d["clean"] = e.clean;
    d["corrupted"] = e.corrupted;
    d["correct"] = e.correct;
    d["incorrect"] = e.incorrect;
    if (!e.correct_ids.empty()) d["correct_ids"] = e.correct_ids;
    if (!e.incorrect_ids.empty()) d["incorrect_ids"] = e.incorrect_ids;
    d["split"] = e.split;
    d["line"] = e.line;
    out.append(d);
  }
  return out;
}

// ---- metrics --------------------------------------------------------------------------------------

// A Python callable metric(logits [N, V], batch: dict) -> [N] as the library's MetricFn. The
// batch dict holds correct / incorrect answer ids [N, A] (int64), their masks (float, 1 for a
// real answer) and, when needs_clean_logits, the full model's logits at the same positions.
MetricFn python_metric(const py::object& fn, const std::string& name, bool higher_is_better, bool needs_clean) {
  MetricFn m;
  if (fn.is_none()) return m;
  m.name = name;
  m.higher_is_better = higher_is_better;
  m.needs_clean_logits = needs_clean;
  py::object f = fn;  // kept alive by the closure
  m.fn = [f](const at::Tensor& last, const Batch& b, const at::Tensor& clean_last) -> at::Tensor {
    py::gil_scoped_acquire gil;
    py::dict batch;
    batch["correct"] = b.correct;
    batch["incorrect"] = b.incorrect;
    batch["correct_mask"] = b.correct_mask;
    batch["incorrect_mask"] = b.incorrect_mask;
    batch["clean_logits"] = clean_last.defined() ? py::cast(clean_last) : py::none();
    py::object r;
    try {
      r = f(last, batch);
    } catch (py::error_already_set& err) {
      // Ctrl-C while the metric ran: no value to return, so the method ends here (a search keeps
      // the checkpoint of its last finished unit).
      if (!err.matches(PyExc_KeyboardInterrupt)) throw;
      throw Interrupted();
    }
    if (!THPVariable_Check(r.ptr())) fail("metric " + std::string(py::str(f)), "must return a torch.Tensor of [N] values");
    return r.cast<at::Tensor>();
  };
  return m;
}

// ---- options --------------------------------------------------------------------------------------

// The compute dtype named "f32" or "bf16".
DType dtype_of(const std::string& dtype) {
  if (dtype == "bf16") return DType::BF16;
  if (dtype != "f32") fail("dtype " + dtype, "expected f32 or bf16");
  return DType::F32;
}

// Every key of kw must be one of `known`; else an error naming it and listing them ("unknown; " + which + list).
template <size_t N>
void check_known(const py::dict& kw, const char* const (&known)[N], const std::string& which) {
  for (const auto& [k, v] : kw) {
    const std::string key = py::str(k);
    if (std::find(std::begin(known), std::end(known), key) != std::end(known)) continue;
    std::string list;
    for (const char* s : known) list += (list.empty() ? "" : ", ") + std::string(s);
    fail("option " + key, "unknown; " + which + list);
  }
}

// The keyword options of attribute() into every method's struct (the command line's shared
// options and the most used of each method's own). Unknown keys are an error listing the known.
DiscoverOptions discover_options(const py::dict& kw, const Model& model, CallContext& ctx) {
  DiscoverOptions o;
  static const char* known[] = {"ablation", "metric", "steps", "batch_size", "seed", "tau", "target", "checkpoint",
                                "checkpoint_every", "resume", "fingerprint", "mask_value", "exact_masks",
                                "node_level", "acdc_mode", "max_candidates", "rollback_tau", "absolute",
                                "node_masks", "node_target", "lr", "lambda_lr", "warmup_steps",
                                "target_warmup_steps", "init_log_alpha", "init_std", "weight_decay",
                                "max_grad_norm", "cache_mb", "keep_embedding_edges", "prefilter",
                                "keep_fraction", "importance_threshold", "min_value_threshold", "max_masks",
                                "flap", "pruning", "sparsity", "include_mlp"};
  check_known(kw, known, "the options are ");
  auto has = [&](const char* k) { return kw.contains(k) && !kw[k].is_none(); };
  auto get_i = [&](const char* k) { return kw[k].cast<int64_t>(); };
  auto get_d = [&](const char* k) { return kw[k].cast<double>(); };
  if (has("ablation")) {
    const Ablation a = ablation_from_string(kw["ablation"].cast<std::string>());
    o.attribution.ablation = o.acdc.ablation = o.edge_pruning.ablation = o.path_patching.ablation = a;
  }
  if (has("metric")) {
    const Metric m = parse_metric(kw["metric"].cast<std::string>());
    o.attribution.metric = o.acdc.metric = o.path_patching.metric = o.flap.metric = m;
    if (m == Metric::KL || m == Metric::MSE) o.edge_pruning.loss = m;  // its loss: KL (default) or MSE
  }
  if (has("steps")) o.attribution.steps = o.edge_pruning.steps = get_i("steps");
  if (has("batch_size"))
    o.attribution.batch_size = o.edge_pruning.batch_size = o.path_patching.batch_size = o.flap.batch_size =
        get_i("batch_size");
  // The command line's default seed (its --seed, also the task's, is 0), so equal calls give equal results.
  o.edge_pruning.seed = has("seed") ? static_cast<uint64_t>(get_i("seed")) : 0;
  if (has("tau")) o.acdc.tau = get_d("tau");
  if (has("target")) o.edge_pruning.edge_target = get_d("target");
  if (has("mask_value")) o.attribution.mask_value = get_d("mask_value");
  if (has("exact_masks")) o.attribution.exact_masks = get_i("exact_masks");
  if (has("node_level")) o.attribution.node_level = kw["node_level"].cast<bool>();
  if (has("acdc_mode")) {
    const std::string m = kw["acdc_mode"].cast<std::string>();
    if (m == "classic") o.acdc.mode = AcdcOptions::Mode::Classic;
    else if (m == "group") o.acdc.mode = AcdcOptions::Mode::Group;
    else if (m == "rollback") o.acdc.mode = AcdcOptions::Mode::Rollback;
    else fail("acdc_mode " + m, "expected classic, group or rollback");
  }
  if (has("max_candidates")) o.acdc.max_candidates = get_i("max_candidates");
  if (has("rollback_tau")) o.acdc.rollback_tau = get_d("rollback_tau");
  if (has("absolute")) o.acdc.absolute = kw["absolute"].cast<bool>();
  EdgePruningOptions& e = o.edge_pruning;
  if (has("node_masks")) e.node_masks = kw["node_masks"].cast<bool>();
  if (has("node_target")) e.node_target = get_d("node_target");
  if (has("lr")) e.lr = get_d("lr");
  if (has("lambda_lr")) e.lambda_lr = get_d("lambda_lr");
  if (has("warmup_steps")) e.warmup_steps = get_i("warmup_steps");
  if (has("target_warmup_steps")) e.target_warmup_steps = get_i("target_warmup_steps");
  if (has("init_log_alpha")) e.init_mean = get_d("init_log_alpha");
  if (has("init_std")) e.init_std = get_d("init_std");
  if (has("weight_decay")) e.weight_decay = get_d("weight_decay");
  if (has("max_grad_norm")) e.max_grad_norm = get_d("max_grad_norm");
  if (has("cache_mb")) e.cache_mb = get_i("cache_mb");
  if (has("keep_embedding_edges")) e.keep_embedding_edges = kw["keep_embedding_edges"].cast<bool>();
  if (has("prefilter")) o.hap.prefilter = kw["prefilter"].cast<std::string>();
  if (has("keep_fraction")) o.hap.keep_fraction = get_d("keep_fraction");
  if (has("importance_threshold")) o.path_patching.importance_threshold = get_d("importance_threshold");
  if (has("min_value_threshold")) o.path_patching.min_value_threshold = get_d("min_value_threshold");
  if (has("max_masks")) o.path_patching.max_masks = get_i("max_masks");
  if (has("flap")) o.flap.kind = flap_kind_from_string(kw["flap"].cast<std::string>());
  if (has("pruning")) o.app.pruning = flap_kind_from_string(kw["pruning"].cast<std::string>());
  if (has("sparsity")) o.flap.sparsity = get_d("sparsity");
  if (has("include_mlp")) o.flap.include_mlp = kw["include_mlp"].cast<bool>();
  for (RunControl* rc : {&o.acdc.run, &o.edge_pruning.run, &o.path_patching.run}) {
    if (has("checkpoint")) rc->checkpoint = kw["checkpoint"].cast<std::string>();
    if (has("checkpoint_every")) rc->checkpoint_seconds = get_d("checkpoint_every");
    if (has("resume")) rc->resume = kw["resume"].cast<bool>();
    rc->fingerprint = has("fingerprint") ? kw["fingerprint"].cast<std::string>() : model.source().origin;
    rc->progress = ctx.progress_fn();
    rc->stop = ctx.stop_fn();
  }
  o.attribution.progress = ctx.progress_fn();
  o.flap.progress = ctx.progress_fn();
  return o;
}

// The keyword options of tune() (the command line's `tune` options, same names and defaults).
TuneOptions tune_options(const py::dict& kw, const Model& model, CallContext& ctx) {
  TuneOptions o;
  static const char* known[] = {"nodes", "edges", "mlp_heads", "ablation", "metric", "discovery_examples",
                                "train_embeddings", "train_norms", "full", "optimizer", "lr", "momentum",
                                "weight_decay", "rounds", "steps_per_round", "batch_size", "warmup_steps",
                                "max_grad_norm", "seed", "checkpoint", "checkpoint_every", "resume", "fingerprint"};
  check_known(kw, known, "the options of tune are ");
  auto has = [&](const char* k) { return kw.contains(k) && !kw[k].is_none(); };
  auto get_i = [&](const char* k) { return kw[k].cast<int64_t>(); };
  auto get_d = [&](const char* k) { return kw[k].cast<double>(); };
  auto get_b = [&](const char* k) { return kw[k].cast<bool>(); };
  if (has("nodes")) o.nodes = get_i("nodes");
  if (has("edges")) o.edges = get_i("edges");
  if (has("mlp_heads")) o.mlp_heads = get_i("mlp_heads");
  if (has("ablation")) o.ablation = ablation_from_string(kw["ablation"].cast<std::string>());
  if (has("metric")) o.metric = parse_metric(kw["metric"].cast<std::string>());
  if (has("discovery_examples")) o.discovery_examples = get_i("discovery_examples");
  if (has("train_embeddings")) o.train_embeddings = get_b("train_embeddings");
  if (has("train_norms")) o.train_norms = get_b("train_norms");
  if (has("full")) o.full = get_b("full");
  if (has("optimizer")) o.optimizer = kw["optimizer"].cast<std::string>();
  if (has("lr")) o.lr = get_d("lr");
  if (has("momentum")) o.momentum = get_d("momentum");
  if (has("weight_decay")) o.weight_decay = get_d("weight_decay");
  if (has("rounds")) o.rounds = get_i("rounds");
  if (has("steps_per_round")) o.steps_per_round = get_i("steps_per_round");
  if (has("batch_size")) o.batch_size = get_i("batch_size");
  if (has("warmup_steps")) o.warmup_steps = get_i("warmup_steps");
  if (has("max_grad_norm")) o.max_grad_norm = get_d("max_grad_norm");
  if (has("seed")) o.seed = static_cast<uint64_t>(get_i("seed"));
  if (has("checkpoint")) o.run.checkpoint = kw["checkpoint"].cast<std::string>();
  if (has("checkpoint_every")) o.run.checkpoint_seconds = get_d("checkpoint_every");
  if (has("resume")) o.run.resume = get_b("resume");
  o.run.fingerprint = has("fingerprint") ? kw["fingerprint"].cast<std::string>() : model.source().origin;
  o.run.progress = ctx.progress_fn();
  o.run.stop = ctx.stop_fn();
  return o;
}

// An evaluation as Python: each metric's list [model, circuits..., empty] and, when kept, the
// per-example tensors [K + 1, N].
py::dict evaluation_dict(const CircuitEvaluation& ev) {
  py::dict d;
  d["logit_diff"] = ev.logit_diff;
  d["prob_diff"] = ev.prob_diff;
  d["kl"] = ev.kl;
  d["accuracy"] = ev.accuracy;
  d["mse"] = ev.mse;
  d["exact_match"] = ev.exact_match;
  if (!ev.custom.empty()) d["custom"] = ev.custom;
  if (!ev.per_example.empty()) {
    py::dict pe;
    for (const auto& [k, t] : ev.per_example) pe[py::str(k)] = t;
    d["per_example"] = pe;
  }
  return d;
}

// Runs `f` with the GIL released, turning Ctrl-C into KeyboardInterrupt.
template <class F>
auto interruptible(CallContext& ctx, const std::string& what, F&& f) {
  try {
    py::gil_scoped_release release;
    auto r = f();
    if (ctx.interrupted) throw Interrupted();
    return r;
  } catch (const Interrupted&) {
    raise_keyboard_interrupt(what + " interrupted" +
                             (ctx.stoppable ? " (its checkpoint, if one was given, is written: resume=True continues)"
                                            : ""));
  }
}

py::dict result_dict(const DiscoveryResult& r) {
  py::dict d;
  d["method"] = r.method;
  d["scores"] = r.scores;
  d["in_circuit"] = r.in_circuit.defined() ? py::cast(r.in_circuit) : py::none();
  d["score_sign"] = r.score_sign;
  d["report"] = to_python(r.report);
  return d;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "edgewise's C++ engine (bindings; see the edgewise package for the documented API)";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      PyErr_SetString(error_type(e.what()), e.what());
    }
  });

  // ---- models and graphs ----
  py::class_<Model>(m, "Model")
      .def_static(
          "load",
          [](const std::string& spec, const std::string& dtype, const std::string& device, bool tokenizer) {
            LoadOptions o;
            o.dtype = dtype_of(dtype);
            o.device = device;
            o.load_tokenizer = tokenizer;
            py::gil_scoped_release release;
            return Model::load(spec, o);
          },
          py::arg("spec"), py::arg("dtype") = "f32", py::arg("device") = "cpu", py::arg("tokenizer") = true)
      .def_static(
          "from_tensors",
          [](const std::string& config, const std::string& tokenizer_json, const std::string& vocab_json,
             const std::string& merges_txt, const std::map<std::string, at::Tensor>& tensors,
             const std::string& dtype, const std::string& spec) {
            ModelSource src;
            src.spec = spec;
            src.origin = "tensors in memory";
            src.config = config;
            src.tokenizer_json = tokenizer_json;
            src.vocab_json = vocab_json;
            src.merges_txt = merges_txt;
            LoadOptions o;
            o.dtype = dtype_of(dtype);
            py::gil_scoped_release release;
            return Model::from_tensors(src, tensors, o);
          },
          py::arg("config"), py::arg("tokenizer_json"), py::arg("vocab_json"), py::arg("merges_txt"),
          py::arg("tensors"), py::arg("dtype"), py::arg("spec"))
      .def_property_readonly("load_notes", &Model::load_notes)
      .def(
          "save_pretrained",
          [](const Model& md, const std::string& dir) {
            py::gil_scoped_release release;
            // Across ranks rank 0 writes (the others would race it for the folder); in a pipeline
            // every stage first sends its layers (gathered()).
            const Model whole = md.gathered();
            if (dist::is_root()) save_hf_model(whole, dir);
          },
          py::arg("dir"))
      .def_property_readonly("source",
                             [](const Model& md) {
                               const ModelSource& s = md.source();
                               if (s.kind == ModelSource::Kind::Gguf) return s.gguf;
                               return s.dir.empty() ? s.spec : s.dir;
                             })
      .def_property_readonly("device", [](const Model& md) { return md.device().str(); })
      .def_property_readonly("config",
                             [](const Model& md) {
                               const ModelConfig& c = md.config();
                               py::dict d;
                               d["arch"] = arch_name(c.arch);
                               d["n_layers"] = c.n_layers;
                               d["n_heads"] = c.n_heads;
                               d["n_kv_heads"] = c.n_kv_heads;
                               d["d_model"] = c.d_model;
                               d["d_mlp"] = c.d_mlp;
                               d["vocab_size"] = c.vocab_size;
                               d["n_ctx"] = c.n_ctx;
                               return d;
                             })
      .def_property_readonly("has_tokenizer", &Model::has_tokenizer)
      .def("encode", [](const Model& md, const std::string& text) { return md.tokenizer().encode_for_model(text); },
           py::arg("text"))
      .def("decode", [](const Model& md, const std::vector<int32_t>& ids) { return md.tokenizer().decode_shown(ids); },
           py::arg("ids"))
      .def("weights", [](const Model& md) { return md.weights(); });

  py::class_<Graph>(m, "Graph")
      .def(py::init([](const Model& md, bool head_level) { return model_graph(md, !head_level); }), py::arg("model"),
           py::arg("head_level") = false)
      .def_property_readonly("n_sources", &Graph::n_sources)
      .def_property_readonly("n_readers", &Graph::n_readers)
      .def_property_readonly("n_edges", &Graph::n_edges)
      .def_property_readonly("split_qkv", &Graph::split_qkv)
      .def_property_readonly("source_names",
                             [](const Graph& g) {
                               std::vector<std::string> v;
                               for (int64_t i = 0; i < g.n_sources(); ++i) v.push_back(g.source_name(i));
                               return v;
                             })
      .def_property_readonly("reader_names",
                             [](const Graph& g) {
                               std::vector<std::string> v;
                               for (int64_t j = 0; j < g.n_readers(); ++j) v.push_back(g.reader_name(j));
                               return v;
                             })
      .def("edge_name", &Graph::edge_name, py::arg("src"), py::arg("dst"))
      .def("find_edge",
           [](const Graph& g, const std::string& name) -> py::object {
             auto e = g.find_edge(name);
             return e ? py::cast(*e) : py::none();
           })
      .def_property_readonly("real_edge_mask", [](const Graph& g) {
        std::vector<uint8_t> r = g.real_edges();
        return at::from_blob(r.data(), {g.n_sources(), g.n_readers()}, at::kByte).to(at::kBool).clone();
      });

  // ---- data ----
  py::class_<Dataset>(m, "Dataset",
                      "A task's examples: clean and corrupted prompts with correct and incorrect answers, checked "
                      "against the model's tokenizer. Made by task(), records() or generate().")
      .def_readonly("name", &Dataset::name, "The task's name or the file's path.")
      .def_readonly("description", &Dataset::description, "What the task measures.")
      .def_readonly("skipped", &Dataset::skipped, "Bad lines skipped (skip_bad_lines=True).")
      .def_readonly("skip_notes", &Dataset::skip_notes, "One 'file:line: why' per skipped line.")
      .def_readonly("default_metric", &Dataset::default_metric,
                    "The task's own metric where it differs from the library's ('mse' for the Tracr tasks), or ''.")
      .def_readonly("default_ablation", &Dataset::default_ablation,
                    "The task's own ablation ('zero' for the Tracr tasks), or ''.")
      .def_readonly("warnings", &Dataset::warnings,
                    "Notes such as multi-token answers (the metrics use each answer's first token).")
      .def("__len__", [](const Dataset& d) { return d.examples.size(); })
      .def_property_readonly("examples", &examples_of,
                             "The examples as dicts: clean, corrupted, correct, incorrect (lists), split, line.")
      .def("head", &Dataset::head, py::arg("n"), "The first n examples.")
      .def("split", &Dataset::select_split, py::arg("which"),
           "The examples of one split, 'train' or 'validation' (a file's split field).");
  m.def(
      "task",
      [](const std::string& name, const Model& model, int64_t n, uint64_t seed, bool skip_bad) {
        LoadDataOptions o;
        o.skip_bad = skip_bad;
        py::gil_scoped_release release;
        return load_task(name, model.tokenizer(), n, seed, o);
      },
      py::arg("name"), py::arg("model"), py::arg("n"), py::arg("seed"), py::arg("skip_bad") = false);
  m.def("records", &dataset_from_records, py::arg("records"), py::arg("model"), py::arg("skip_bad") = false,
        py::arg("name") = "records");

  // ---- methods ----
  m.def("methods", [] {
    py::list out;
    for (const MethodInfo& mi : discovery_methods()) {
      py::dict d;
      d["key"] = mi.key;
      d["kind"] = mi.kind == MethodKind::Attribution ? "attribution" : "search";
      d["summary"] = mi.summary;
      d["sweep"] = mi.sweep;
      d["trains"] = mi.trains;
      d["head_set"] = mi.head_set;
      out.append(d);
    }
    return out;
  });
  m.def(
      "discover",
      [](const std::string& method, const Model& model, const Graph& graph, const Dataset& data, py::dict options,
         py::object metric, const std::string& metric_name, bool higher_is_better, bool needs_clean_logits,
         py::object progress) {
        const MethodInfo& mi = discovery_method(method);
        CallContext ctx;
        ctx.progress = progress;
        ctx.stoppable = mi.kind == MethodKind::Search;
        DiscoverOptions o = discover_options(options, model, ctx);
        const MetricFn fn = python_metric(metric, metric_name, higher_is_better, needs_clean_logits);
        o.attribution.metric_fn = o.acdc.metric_fn = fn;
        BatchOptions bo;
        bo.require_aligned = ablation_needs_alignment(o.attribution.ablation);
        DiscoveryResult r = interruptible(ctx, method, [&] {
          const Batch b = make_batch(data, model.tokenizer(), bo);
          return discover(method, model, graph, b, o);
        });
        return result_dict(r);
      },
      py::arg("method"), py::arg("model"), py::arg("graph"), py::arg("data"), py::arg("options"),
      py::arg("metric") = py::none(), py::arg("metric_name") = "custom", py::arg("higher_is_better") = true,
      py::arg("needs_clean_logits") = false, py::arg("progress") = py::none());

  // ---- circuits ----
  py::class_<Circuit>(m, "Circuit")
      .def_static(
          "from_scores",
          [](const Model& model, const Graph& graph, const at::Tensor& scores, const std::optional<at::Tensor>& kept) {
            return circuit_from_scores(model, graph, scores, kept ? *kept : at::Tensor());
          },
          py::arg("model"), py::arg("graph"), py::arg("scores"), py::arg("kept") = py::none())
      .def_static("read", &circuit_read, py::arg("path"))
      .def("write", [](const Circuit& c, const std::string& path) { circuit_write(c, path); }, py::arg("path"))
      .def(
          "select",
          [](Circuit& c, int64_t edges, int64_t nodes, double threshold, bool absolute, bool greedy,
             bool higher_is_better) {
            SelectOptions so;
            so.edges = edges, so.nodes = nodes, so.threshold = threshold;
            so.absolute = absolute, so.greedy = greedy, so.higher_is_better = higher_is_better;
            return select_circuit(c, so);
          },
          py::arg("edges") = -1, py::arg("nodes") = -1, py::arg("threshold") = std::nan(""),
          py::arg("absolute") = true, py::arg("greedy") = false, py::arg("higher_is_better") = true)
      .def("prune", &Circuit::prune)
      .def_property_readonly("n_edges_in", &Circuit::n_edges_in)
      .def_property_readonly("scores", &circuit_scores)
      .def_property_readonly("mask", &circuit_mask)
      .def_property_readonly("split_qkv", [](const Circuit& c) { return c.split_qkv; })
      .def_property_readonly("graph", &Circuit::graph)
      .def_property(
          "meta", [](const Circuit& c) { return to_python(c.meta); },
          [](Circuit& c, const py::object& o) { c.meta = to_json(o); })
      .def("dot", &circuit_dot)
      .def("draw_svg", &circuit_draw_svg, py::arg("path"))
      .def("copy", [](const Circuit& c) { return Circuit(c); });

  // ---- evaluation ----
  m.def(
      "evaluate",
      [](const Model& model, const Graph& graph, const Dataset& data, const at::Tensor& masks,
         const std::string& ablation, int64_t batch_size, py::object metric, const std::string& metric_name,
         bool higher_is_better, bool needs_clean_logits, py::object progress, bool per_example) {
        const Graph own = model_graph(model, graph.split_qkv());
        if (!(own.shape() == graph.shape()))
          fail("evaluate", "the circuit's graph (" + std::to_string(graph.shape().n_layers) + " layers, " +
                               std::to_string(graph.shape().n_heads) + " heads, " +
                               std::to_string(graph.shape().n_kv_heads) + " kv heads) does not match the model (" +
                               std::to_string(own.shape().n_layers) + ", " + std::to_string(own.shape().n_heads) +
                               ", " + std::to_string(own.shape().n_kv_heads) + ")");
        CallContext ctx;
        ctx.progress = progress;
        EvaluateOptions eo;
        eo.ablation = ablation_from_string(ablation);
        eo.batch_size = batch_size;
        eo.metric_fn = python_metric(metric, metric_name, higher_is_better, needs_clean_logits);
        eo.progress = ctx.progress_fn();
        BatchOptions bo;
        bo.require_aligned = ablation_needs_alignment(eo.ablation);
        eo.per_example = per_example;
        CircuitEvaluation ev = interruptible(ctx, "evaluate", [&] {
          const Batch b = make_batch(data, model.tokenizer(), bo);
          return evaluate_circuits(model, graph, b, masks, eo);
        });
        return evaluation_dict(ev);
      },
      py::arg("model"), py::arg("graph"), py::arg("data"), py::arg("masks"), py::arg("ablation") = "resample",
      py::arg("batch_size") = 16, py::arg("metric") = py::none(), py::arg("metric_name") = "custom",
      py::arg("higher_is_better") = true, py::arg("needs_clean_logits") = false, py::arg("progress") = py::none(),
      py::arg("per_example") = false);
  m.def(
      "view_html",
      [](const std::vector<std::pair<std::string, Circuit>>& circuits, const std::optional<std::vector<double>>& curve_x,
         const std::optional<std::vector<double>>& curve_y, int64_t show) {
        std::vector<ViewInput> in;
        for (const auto& [name, c] : circuits) in.push_back({name, c});
        ViewOptions vo;
        if (curve_x && curve_y) {
          if (curve_x->size() != curve_y->size()) throw std::invalid_argument("view: curve x and y differ in length");
          vo.curve = ViewCurve{*curve_x, *curve_y};
        }
        vo.show = show;
        return circuit_view_html(in, vo);
      },
      py::arg("circuits"), py::arg("curve_x") = py::none(), py::arg("curve_y") = py::none(), py::arg("show") = -1,
      "The viewer page (edgewise view): [(name, Circuit)], optional curve points.");
  m.def(
      "circuit_tracer_graph",
      [](const Circuit& c, const std::string& slug) { return circuit_tracer_graph(c, slug).dump(); },
      py::arg("circuit"), py::arg("slug"), "circuit-tracer's graph JSON of the circuit's in-graph edges, as text.");
  m.def(
      "init_distributed",
      [] {
        py::gil_scoped_release nogil;  // the rendezvous waits for the other ranks
        dist::init(dist::settings_from_environment());
        return dist::world_size();
      },
      "Joins the ranks torchrun / SLURM started (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT or "
      "EDGEWISE_MASTER_PORT); returns the world size (1: no variables, nothing joined).");
  m.def(
      "shutdown_distributed",
      [] {
        py::gil_scoped_release nogil;
        dist::shutdown();
      },
      "Leaves the group (waits for every rank).");
  m.def("rank", &dist::rank);
  m.def("world_size", &dist::world_size);
  m.def("pipeline_stages", &dist::stages);
  m.def("pipeline_stage", &dist::stage);
  m.def("tune_allocator", &tune_allocator,
        "glibc malloc keeps freed memory for reuse (mmap and trim thresholds 1 GiB), as the command line does.");
  m.def(
      "roc",
      [](const Circuit& scored, const Circuit& truth, bool merge_qkv, bool absolute) {
        RocOptions o;
        o.merge_qkv = merge_qkv;
        o.absolute = absolute;
        auto level = [](const RocItems& it) {
          const RocLevel l = roc_level(it);
          py::dict d;
          d["auc"] = l.curve.auc;
          d["fpr"] = l.curve.fpr;
          d["tpr"] = l.curve.tpr;
          d["thresholds"] = l.curve.thresholds;
          d["positives"] = l.curve.positives;
          d["negatives"] = l.curve.negatives;
          d["chosen"] = l.chosen;
          d["tpr_chosen"] = l.tpr_chosen;
          d["fpr_chosen"] = l.fpr_chosen;
          d["names"] = it.names;
          return d;
        };
        py::dict d;
        d["edge"] = level(roc_edge_items(scored, truth, o));
        d["node"] = level(roc_node_items(scored, truth, o));
        return d;
      },
      py::arg("scored"), py::arg("truth"), py::arg("merge_qkv") = false, py::arg("absolute") = true);
  m.def("curve_fractions", &curve_fractions);
  m.def(
      "curve_circuits",
      [](const Circuit& scored, const std::vector<double>& fractions, bool absolute, bool greedy,
         const std::string& metric) {
        SelectOptions so;  // as the command line's --curve: the signed ranking follows the metric's direction
        so.absolute = absolute, so.greedy = greedy, so.higher_is_better = metric_higher_is_better(parse_metric(metric));
        return curve_circuits(scored, so, fractions);
      },
      py::arg("scored"), py::arg("fractions"), py::arg("absolute") = true, py::arg("greedy") = false,
      py::arg("metric") = "logit-diff");
  m.def(
      "sweep_curve",
      [](const std::vector<Circuit>& circuits, const std::vector<int64_t>& raw_edges, int64_t n_edges) {
        CurvePoints p = sweep_curve(circuits, raw_edges, n_edges);
        return py::make_tuple(p.fractions, p.circuits);
      },
      py::arg("circuits"), py::arg("raw_edges"), py::arg("n_edges"));
  m.def(
      "faithfulness_curve",
      [](const std::vector<double>& fractions, const std::vector<Circuit>& circuits, const std::vector<double>& metric,
         double f_empty, double f_model, int64_t n_edges) {
        const FaithfulnessCurve fc = faithfulness_curve(fractions, circuits, metric, f_empty, f_model, n_edges);
        py::list pts;
        for (const CurvePoint& p : fc.points) {
          py::dict d;
          d["fraction"] = p.fraction;
          d["budget"] = p.budget;
          d["edges"] = p.edges;
          d["metric"] = p.metric;
          d["faithfulness"] = p.faithfulness;
          pts.append(d);
        }
        py::dict d;
        d["points"] = pts;
        d["cpr"] = fc.cpr;
        d["cmd"] = fc.cmd;
        d["csv"] = fc.csv();
        return d;
      },
      py::arg("fractions"), py::arg("circuits"), py::arg("metric"), py::arg("f_empty"), py::arg("f_model"),
      py::arg("n_edges"));
  m.def(
      "sweep",
      [](const std::string& method, const Model& model, const Graph& graph, const Dataset& data,
         const std::vector<double>& values, py::dict options, py::object metric, const std::string& metric_name,
         bool higher_is_better, bool needs_clean_logits, py::object progress) {
        CallContext ctx;
        ctx.progress = progress;
        ctx.stoppable = true;
        DiscoverOptions o = discover_options(options, model, ctx);
        const MetricFn fn = python_metric(metric, metric_name, higher_is_better, needs_clean_logits);
        o.attribution.metric_fn = o.acdc.metric_fn = fn;
        BatchOptions bo;
        bo.require_aligned = ablation_needs_alignment(o.attribution.ablation);
        SweepResult sw = interruptible(ctx, method + " sweep", [&] {
          const Batch b = make_batch(data, model.tokenizer(), bo);
          return discover_sweep(method, model, graph, b, o, values);
        });
        py::list runs;
        for (const DiscoveryResult& r : sw.runs) runs.append(result_dict(r));
        py::dict d;
        d["method"] = sw.method;
        d["values"] = sw.values;
        d["runs"] = runs;
        d["scores"] = sw.scores;
        return d;
      },
      py::arg("method"), py::arg("model"), py::arg("graph"), py::arg("data"), py::arg("values"), py::arg("options"),
      py::arg("metric") = py::none(), py::arg("metric_name") = "custom", py::arg("higher_is_better") = true,
      py::arg("needs_clean_logits") = false, py::arg("progress") = py::none());

  // ---- circuit-tuning ----
  m.def(
      "tune",
      [](const Model& model, const Dataset& data, py::dict options, py::object progress) {
        CallContext ctx;
        ctx.progress = progress;
        ctx.stoppable = true;
        TuneOptions o = tune_options(options, model, ctx);
        BatchOptions bo;
        bo.require_aligned = ablation_needs_alignment(o.ablation);
        TuneResult r = interruptible(ctx, "tune", [&] {
          const Batch b = make_batch(data, model.tokenizer(), bo);
          return circuit_tune(model, b, o);
        });
        py::list rounds, log;
        for (const TuneRound& t : r.rounds) {
          py::dict d;
          d["round"] = t.round;
          py::list nodes, parts;
          for (const TuneNode& n : t.nodes) nodes.append(py::make_tuple(tune_node_name(n, o.mlp_heads), n.score));
          for (const ParamPart& p : t.parts) parts.append(part_name(p));
          d["nodes"] = nodes;
          d["parts"] = parts;
          d["params"] = t.params;
          d["discovery_seconds"] = t.discovery_seconds;
          rounds.append(d);
        }
        for (const TuneLog& l : r.log) {
          py::dict d;
          d["round"] = l.round, d["step"] = l.step, d["loss"] = l.loss, d["lr"] = l.lr;
          d["seconds"] = l.seconds, d["params_trained"] = l.params_trained;
          log.append(d);
        }
        py::dict d;
        d["model"] = model.with_weights(r.weights);
        d["rounds"] = rounds;
        d["log"] = log;
        d["params_total"] = r.params_total;
        d["params_updated"] = r.params_updated;
        d["steps_done"] = r.steps_done;
        d["complete"] = r.complete;
        d["seconds"] = r.seconds;
        return d;
      },
      py::arg("model"), py::arg("data"), py::arg("options"), py::arg("progress") = py::none());
  m.def(
      "task_score",
      [](const Model& model, const Dataset& data, int64_t batch_size) {
        TaskScore t;
        {
          py::gil_scoped_release release;
          t = task_score(model, make_batch(data, model.tokenizer(), {}), batch_size);
        }
        py::dict d;
        d["logit_diff"] = t.logit_diff, d["accuracy"] = t.accuracy, d["answer_loss"] = t.loss;
        return d;
      },
      py::arg("model"), py::arg("data"), py::arg("batch_size") = 32);
  m.def("normalized_faithfulness", &normalized_faithfulness, py::arg("circuit"), py::arg("empty"), py::arg("model"));
}
