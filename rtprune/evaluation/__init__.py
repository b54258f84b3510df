"""Accuracy evaluation: text metric, ground-truth loaders and the pruning sweep that picks a setting.

Import the submodules directly (`rtprune.evaluation.metrics`, `.datasets`, `.sweep`, `.report`); this
package keeps `import rtprune.evaluation` free of PyMuPDF, matplotlib and transformers.
"""
