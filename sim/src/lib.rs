//! runnel's simulator.
