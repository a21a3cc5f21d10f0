"""From a validated suite to cells: grid expansion, selection, cell keys, resources, training data, time checkpoints. Imports base, components and suite."""
