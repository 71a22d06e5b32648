// Runs across processes: one process per rank, joined through libtorch's c10d (a TCPStore for
// the rendezvous, ProcessGroupGloo for the collectives), the way torch.distributed joins them.
//
//   dist::init(dist::settings_from_environment());   // torchrun / SLURM / `edgewise --nproc N`
//   ... every rank calls the same library functions on the same full data ...
//   dist::shutdown();
//
// The group is the process's default one (torch.distributed's default process group): a library
// function that loops over examples takes this rank's contiguous share of them (my_range) and
// sums what it computed over the ranks (all_reduce_sum), so every rank returns the same result
// and a caller's code is the same on one rank and on many. With one rank (init never called,
// or WORLD_SIZE 1) every collective is a no-op and nothing changes: the 1-rank results are
// bit for bit those of a build without this file.
//
// Faults: every rank sends a heartbeat through the store each second. A rank that dies or hangs
// is noticed by the others within `lost_seconds`; they print one error naming it and exit
// non-zero (after removing staged outputs: on_abort). A rank that fails with an error tells the
// others at once (report_failure), and they stop with its message. Collectives themselves wait up
// to `timeout_seconds` for a live but slow rank.
//
// Pipeline (model parallel): with `stages` P > 1 the ranks form W / P pipelines of P consecutive
// ranks; stage p of each holds the layers range_of(p, n_layers) (Model::load keeps only those)
// and the patched forward and the plain forward pass the residual stream and the store of source
// differences from stage to stage (send / receive), the backward returning through the same links;
// the last stage's logits are broadcast, so every stage computes the same metric. The data loops
// then share examples over the W / P ranks of one stage (the data group: my_range,
// all_reduce_sum), and mask gradients, each stage's own readers' columns, are summed over the
// pipeline (sum_over_stages). docs/SCALING.md says which methods run in a pipeline.
//
// Not here: the command line's launcher (--nproc), docs/SCALING.md (what crosses per method).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace edgewise::dist {

struct Settings {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  /// A collective waits at most this long for the slowest rank (a live one still computing).
  double timeout_seconds = 1800;
  /// A rank whose heartbeat is this old is lost (died or hung): the others stop.
  double lost_seconds = 20;
  /// Pipeline stages P (model parallel): a divisor of world_size; 1 = data parallel only.
  int stages = 1;
  /// Where the settings came from ("torchrun", "SLURM", "" for none), for messages.
  std::string source;
};

/// The torchrun variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT; `edgewise
/// --nproc` sets the same), else SLURM's (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, with
/// MASTER_ADDR / MASTER_PORT), else one rank. EDGEWISE_MASTER_PORT replaces MASTER_PORT (a
/// Python script that also runs torch.distributed on it). EDGEWISE_DIST_TIMEOUT and EDGEWISE_RANK_LOST_SECONDS
/// override the two waits; EDGEWISE_PIPELINE_STAGES sets `stages`. A malformed or inconsistent value is an Error naming the variable.
Settings settings_from_environment();
/// Settings::lost_seconds from EDGEWISE_RANK_LOST_SECONDS alone (the launcher's wait).
double lost_seconds_from_environment();

/// Joins the group (blocks until every rank has joined, at most timeout_seconds). World size 1:
/// nothing. Fails when called twice, or naming the address when the rendezvous fails.
void init(const Settings& s);
/// Leaves the group: this rank says it is done, waits for the others, and closes the group.
void shutdown();
/// True between init (world size > 1) and shutdown.
bool active();
int rank();
int world_size();
/// Rank 0: the one that prints and writes files (true on one rank).
bool is_root();
/// The data group: the ranks at this rank's pipeline stage (all ranks without a pipeline). Data
/// loops share examples over it.
int data_rank();
int data_size();
/// Pipeline stages (1: none) and this rank's stage, 0 .. stages() - 1.
int stages();
int stage();

/// In place, the sum over the data group (every rank gets the same values). No-op when the group
/// has one rank. `what` names the exchange in errors ("EAP scores").
void all_reduce_sum(at::Tensor& t, const char* what);
/// The vector's values summed over the data group in one exchange (float64), in place.
void all_reduce_sum(std::vector<double>& v, const char* what);
/// In place, rank `root`'s values on every rank.
void broadcast(at::Tensor& t, int root, const char* what);

/// Pipeline exchanges, within this rank's pipeline (no-ops without one). Stages are numbered
/// from 0. send / recv: a contiguous tensor to / from another stage (recv fills `t`, whose shape
/// and dtype the receiver knows); a receive takes the message sent with the same `tag` (a pass's
/// number: the backward of several passes may run in any order).
void send(const at::Tensor& t, int to_stage, int tag, const char* what);
void recv(at::Tensor& t, int from_stage, int tag, const char* what);
/// In place, stage `from_stage`'s values on every stage of the pipeline.
void broadcast_from_stage(at::Tensor& t, int from_stage, const char* what);
/// In place, the sum over the pipeline's stages (each stage's share of a gradient: its readers).
void sum_over_stages(at::Tensor& t, const char* what);
/// True on every rank when `b` is true on any (a stop request seen by one rank stops all at the
/// same unit of work).
bool any(bool b, const char* what);
/// Waits for every rank.
void barrier(const char* what);

/// Data parallel's exchange (DDP's): in place, each leaf's gradient (undefined: zeros) and
/// `value` summed over the data group in one float32 all-reduce; returns the summed value. A leaf
/// without a gradient gets the sum as one. In a pipeline the gradients are then summed over the
/// stages (each holds its readers' share; `value`, the same on every stage, is not) — or, given
/// `stage_local`, only the leaves it does not flag (1: a stage's own layer's weights, which no
/// other stage has; the unflagged ones must be the same, in the same order, on every stage).
/// No-op on one rank (returns `value`).
double all_reduce_gradients(const std::vector<at::Tensor>& leaves, double value, const char* what,
                            const std::vector<uint8_t>* stage_local = nullptr);

/// A contiguous share [begin, end) of n items (over the data group).
struct Range {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};
/// Rank r's share of n items dealt in whole units of `unit` items (batches): the ceil(n / unit)
/// units split as evenly as possible, lower ranks taking one more; contiguous, in rank order.
/// One rank: [0, n).
Range range_of(int r, int64_t n, int64_t unit = 1);
/// Stage p's share of n items (layers), in stage order; no pipeline: [0, n).
Range stage_range(int p, int64_t n);
Range my_range(int64_t n, int64_t unit = 1);

/// Rows [0, n) (along `dim`) of a tensor that `f(begin, end)` computes for rows [begin, end):
/// each rank computes its share (whole units), and every rank gets all n rows (the shares summed
/// into zeros: exact). One rank: f(0, n).
at::Tensor gather_rows(int64_t n, int64_t unit, const std::function<at::Tensor(int64_t, int64_t)>& f,
                       const char* what, int64_t dim = 0);

/// A running count scaled to the whole job, for progress on rank 0: rank 0's share is done to
/// `done` of `share`; the job's total is `total` (the others run at the same pace).
int64_t job_progress(int64_t done, int64_t share, int64_t total);

/// Where a rank's fatal message goes when another rank is lost (default 2, stderr; the command
/// line silences stderr on ranks other than 0 and passes a copy of it here).
void set_message_fd(int fd);
/// Called before this process exits because another rank was lost (remove staged outputs).
void on_abort(std::function<void()> f);
/// Tells the other ranks this one failed with `message` (they stop at once with it). Called by
/// the command line before it exits with an error; a no-op on one rank.
void report_failure(const std::string& message);

/// What this process sent through collectives since init: calls and bytes (for docs/SCALING.md).
struct Traffic {
  int64_t collectives = 0;
  int64_t bytes = 0;
};
Traffic traffic();

}  // namespace edgewise::dist
