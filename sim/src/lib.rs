//! runnel's deterministic simulator: runnel's real code on turmoil hosts, through the
//! simulated seam in [`env`], with faults chosen from a seed.

pub mod env;
