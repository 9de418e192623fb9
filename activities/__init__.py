"""Activities: all I/O, grouped by the resource they touch. Classes get their clients in the constructor."""
