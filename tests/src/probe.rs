//! Running the `vxflow` binary inside a namespace.
