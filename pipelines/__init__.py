"""The pipelines that ship with mirflow (``mirflow pipelines`` lists them)."""
