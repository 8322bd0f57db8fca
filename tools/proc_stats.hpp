#pragma once

// What /proc says about a process: the CPU time and memory figures the
// benchmark and the tests report. Header-only, so tools/bench (which does not
// link the test harness) and the tests share one reader.

#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

#include <sys/types.h>
#include <unistd.h>

namespace vw::proc {

// utime + stime of a live process, in seconds; 0 if unreadable.
inline double cpu_seconds(pid_t pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/stat"};
  std::string stat{std::istreambuf_iterator<char>{in}, {}};
  auto close_paren = stat.rfind(')'); // the command name may hold spaces
  if (close_paren == std::string::npos || close_paren + 2 > stat.size())
    return 0;
  std::istringstream fields{stat.substr(close_paren + 2)};
  std::string skip;
  for (int i = 3; i < 14; ++i) // fields 3..13 precede utime (14) and stime (15)
    fields >> skip;
  unsigned long long utime = 0, stime = 0;
  fields >> utime >> stime;
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// One "Vm...:" line of /proc/<pid>/status ("VmRSS", "VmHWM") in MB; 0 if unreadable.
inline double status_mb(pid_t pid, const std::string& field) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/status"};
  auto prefix = field + ":";
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0)
      return std::stod(line.substr(prefix.size())) / 1024.0;
  return 0;
}

} // namespace vw::proc
