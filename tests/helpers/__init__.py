"""What several test modules share (servers, stores, texts, golden files), so
that no test module imports another."""
