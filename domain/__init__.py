"""Pure domain: data contracts and decisions. No I/O, no clocks, nothing of ours imported from outside."""
