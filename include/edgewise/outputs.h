// The files a run writes, checked before any work and published together at the end, so that a
// bad output path fails in a second rather than after hours of ACDC, and a run that fails leaves
// nothing that looks like a result.
//
//   OutputFiles out;
//   out.add("ioi.json", "the circuit (-o)");          // checked now: folder, writable, not a folder
//   out.add("ioi.svg", "the drawing (--svg)");
//   ... load the model, run the method ...
//   circuit_write(c, out.staged("ioi.json"));        // a hidden file beside the output
//   out.commit();                                     // every staged file renamed into place
//
// If the run throws before commit, the destructor removes the staged files. Torch-free.
#pragma once
#include <string>
#include <vector>

namespace edgewise {

/// Fails unless `path` can be created or replaced: its folder exists (a missing folder, or a file
/// where a folder should be, is named), a new file can be made in it (a probe file is created and
/// removed, which also catches read-only file systems), and `path` is not an existing folder (or,
/// with `directory`, not an existing file). The message starts with `what` ("the circuit (-o)").
void check_output_path(const std::string& path, const std::string& what, bool directory = false);

/// Fails unless `program` is an executable on PATH; `why` says what needs it.
void require_program(const std::string& program, const std::string& why);

/// Whether this process publishes what it stages (true). Ranks other than 0 of a distributed run
/// set false: they compute and stage the same files, and commit() removes theirs (rank 0 writes).
void set_publish_outputs(bool publish);
/// Removes every staged output of this process not yet committed: for a process about to end
/// without unwinding (another rank of its job was lost).
void remove_staged_outputs();

class OutputFiles {
 public:
  OutputFiles() = default;
  OutputFiles(const OutputFiles&) = delete;
  OutputFiles& operator=(const OutputFiles&) = delete;
  OutputFiles(OutputFiles&&) noexcept;
  OutputFiles& operator=(OutputFiles&&) noexcept;
  ~OutputFiles();

  /// Checks `path` (check_output_path) and registers it; a second output on the same path is
  /// refused, naming both. `directory`: the output is a folder (a saved model).
  void add(const std::string& path, const std::string& what, bool directory = false);
  bool has(const std::string& path) const;
  /// Where to write `path` until commit: ".<name>.part-<pid>" in the same folder. Error if `path`
  /// was not added (an output nobody checked).
  std::string staged(const std::string& path) const;
  /// Renames every staged output that was written into place (an existing file or folder there is
  /// replaced), in the order added. Outputs never written are skipped.
  void commit();
  /// The registered paths, in order.
  std::vector<std::string> paths() const;

 private:
  struct Entry {
    std::string path, what, staged;
    bool directory = false;
  };
  std::vector<Entry> entries_;
  bool committed_ = false;
  const Entry& find(const std::string& path) const;
};

}  // namespace edgewise
