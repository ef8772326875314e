//! Properties checked by the fuzz targets, one module per target. Each
//! module only uses `authd`'s public API, so the main crate's integration
//! tests include it by path and run the committed corpus through it.

pub mod cookie_header;
