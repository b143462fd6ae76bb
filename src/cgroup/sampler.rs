//! A sampler that keeps cgroup files open and reads them with pread.
