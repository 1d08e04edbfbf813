//! Tests of the controller's rules.
