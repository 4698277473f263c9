//! The abstract, backend-agnostic surface.
