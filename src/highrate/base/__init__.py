"""What every layer may use: the cache folder, the plugin registry, calls bounded by a timeout."""
