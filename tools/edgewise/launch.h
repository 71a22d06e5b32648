// The command line's local launcher (`--nproc N`) and its rank setup.
#pragma once

namespace edgewise::cli {

/// With `--nproc N` among the arguments (N > 1): starts N ranks of the same command without it
/// and returns the exit status for the launcher (0 when every rank succeeded). N = 1 runs the
/// command here without the option. Without `--nproc`: returns -1 (run the command as usual).
int launch_if_asked(int argc, char** argv);

}  // namespace edgewise::cli
