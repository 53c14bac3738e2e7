//! The pure core: recipes, validation, the procedure, fleet planning. No I/O here.
