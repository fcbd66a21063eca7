//! HTTP mapping of pb methods, free of I/O: paths, content types, error statuses and bodies.
