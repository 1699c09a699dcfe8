"""Research that uses skclap through its public API and extension points; not part of the package."""
