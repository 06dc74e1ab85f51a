//! Properties checked by the fuzz targets; see `checks`.

pub mod checks;
