// Output paths checked up front and published together (edgewise/outputs.h).
#include "edgewise/outputs.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <set>

#include "edgewise/error.h"

namespace edgewise {

namespace fs = std::filesystem;

namespace {

// The deepest existing ancestor of `dir` and whether it is a folder (to name a file in the way).
fs::path existing_ancestor(fs::path dir) {
  std::error_code ec;
  while (!dir.empty() && !fs::exists(dir, ec)) {
    const fs::path up = dir.parent_path();
    if (up == dir) break;
    dir = up;
  }
  return dir;
}

// Every staged path not yet committed or removed, for remove_staged_outputs().
struct Registry {
  std::mutex mu;
  std::set<std::string> staged;
  bool publish = true;
};
Registry& registry() {
  static Registry r;
  return r;
}
void forget(const std::string& staged) {
  std::lock_guard<std::mutex> lock(registry().mu);
  registry().staged.erase(staged);
}

}  // namespace

void set_publish_outputs(bool publish) {
  std::lock_guard<std::mutex> lock(registry().mu);
  registry().publish = publish;
}

void remove_staged_outputs() {
  std::lock_guard<std::mutex> lock(registry().mu);
  for (const std::string& p : registry().staged) {
    std::error_code ec;
    fs::remove_all(p, ec);
  }
  registry().staged.clear();
}

namespace {
// A folder output may be written "tuned/": the folder is "tuned".
std::string without_trailing_slashes(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}
}  // namespace

void check_output_path(const std::string& path, const std::string& what, bool directory) {
  const std::string head = what + " " + path;
  if (path.empty()) fail(what, "the output path is empty");
  const fs::path p(directory ? without_trailing_slashes(path) : path);
  if (p.filename().empty() || p.filename() == "." || p.filename() == "..")
    fail(head, "names a folder, not a " + std::string(directory ? "folder to create" : "file"));
  const fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    const fs::path a = existing_ancestor(dir);
    if (!a.empty() && fs::exists(a, ec) && !fs::is_directory(a, ec))
      fail(head, "cannot be written: " + a.string() + " is a file, not a folder");
    fail(head, "cannot be written: the folder " + dir.string() + " does not exist");
  }
  const auto st = fs::status(p, ec);
  if (!directory && fs::is_directory(st)) fail(head, "is a folder; expected a file name");
  if (directory && fs::exists(st) && !fs::is_directory(st)) fail(head, "is a file; expected a folder (or a new name)");
  // A probe: create and remove a file in the folder (permissions, read-only mounts, quotas).
  std::string probe = (dir / (".edgewise-probe-XXXXXX")).string();
  const int fd = ::mkstemp(probe.data());
  if (fd < 0) fail(head, "cannot be written: no new file can be created in " + dir.string());
  ::close(fd);
  ::unlink(probe.c_str());
  // An existing file must be replaceable: a rename over it needs only the folder, but a file the
  // user cannot write is most likely not meant to be replaced.
  if (!directory && fs::exists(st) && ::access(path.c_str(), W_OK) != 0)
    fail(head, "exists and is not writable");
}

void require_program(const std::string& program, const std::string& why) {
  const char* env = std::getenv("PATH");
  std::string paths = env ? env : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= paths.size()) {
    const size_t end = paths.find(':', start);
    const std::string d = paths.substr(start, end == std::string::npos ? std::string::npos : end - start);
    const fs::path exe = fs::path(d.empty() ? "." : d) / program;
    if (::access(exe.c_str(), X_OK) == 0 && !fs::is_directory(exe)) return;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  fail(why, "needs the program `" + program + "`, which is not on PATH (install it, e.g. apt-get install graphviz)");
}

OutputFiles::OutputFiles(OutputFiles&& o) noexcept
    : entries_(std::move(o.entries_)), committed_(o.committed_) {
  o.entries_.clear();
}

OutputFiles& OutputFiles::operator=(OutputFiles&& o) noexcept {
  if (this != &o) {
    entries_ = std::move(o.entries_);
    committed_ = o.committed_;
    o.entries_.clear();
  }
  return *this;
}

OutputFiles::~OutputFiles() {
  if (committed_) return;
  for (const Entry& e : entries_) {
    std::error_code ec;
    fs::remove_all(e.staged, ec);
    forget(e.staged);
  }
}

void OutputFiles::add(const std::string& path, const std::string& what, bool directory) {
  for (const Entry& e : entries_)
    if (fs::path(e.path).lexically_normal() == fs::path(path).lexically_normal())
      throw Error(what + " and " + e.what + " would both be written to " + path + ": choose other names");
  check_output_path(path, what, directory);
  const fs::path p(directory ? without_trailing_slashes(path) : path);
  const fs::path dir = p.parent_path();
  Entry e;
  e.path = path;
  e.what = what;
  e.directory = directory;
  e.staged = (dir / ("." + p.filename().string() + ".part-" + std::to_string(::getpid()))).string();
  {
    std::lock_guard<std::mutex> lock(registry().mu);
    registry().staged.insert(e.staged);
  }
  entries_.push_back(std::move(e));
}

bool OutputFiles::has(const std::string& path) const {
  for (const Entry& e : entries_)
    if (e.path == path) return true;
  return false;
}

const OutputFiles::Entry& OutputFiles::find(const std::string& path) const {
  for (const Entry& e : entries_)
    if (e.path == path) return e;
  fail(path, "internal: an output written without being checked first (OutputFiles::add)");
}

std::string OutputFiles::staged(const std::string& path) const { return find(path).staged; }

void OutputFiles::commit() {
  bool publish = true;
  {
    std::lock_guard<std::mutex> lock(registry().mu);
    publish = registry().publish;
  }
  for (const Entry& e : entries_) {
    std::error_code ec;
    forget(e.staged);
    if (!publish) {  // another process (rank 0) publishes the same files
      fs::remove_all(e.staged, ec);
      continue;
    }
    if (!fs::exists(e.staged, ec)) continue;
    if (e.directory && fs::exists(e.path, ec)) {  // a folder is replaced: old aside, new in, old removed
      const std::string old = e.staged + ".old";
      fs::remove_all(old, ec);
      fs::rename(e.path, old, ec);
      if (ec) fail(e.path, "cannot move the existing folder aside (" + ec.message() + ")");
      fs::rename(e.staged, e.path, ec);
      if (ec) fail(e.path, "cannot move the new folder into place (" + ec.message() + ")");
      fs::remove_all(old, ec);
      continue;
    }
    fs::rename(e.staged, e.path, ec);
    if (ec) fail(e.path, "cannot move the finished file into place (" + ec.message() + ")");
  }
  committed_ = true;
}

std::vector<std::string> OutputFiles::paths() const {
  std::vector<std::string> out;
  for (const Entry& e : entries_) out.push_back(e.path);
  return out;
}

}  // namespace edgewise
