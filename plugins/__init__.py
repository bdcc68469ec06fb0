"""mirflow's built-in plugins, registered through the ``mirflow`` entry-point group."""
