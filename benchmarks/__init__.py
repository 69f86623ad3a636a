"""Speed and memory benchmarks. Run each from the repository root as a module,
``python -m benchmarks.<name>``, so the top-level packages (``fusion`` among them) import
normally even though one script shares its name."""
