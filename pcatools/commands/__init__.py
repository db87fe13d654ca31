"""One module per ``pcatools`` subcommand; each keeps heavy imports inside its function."""
