"""The classify plug-in: binary, multiclass, multilabel, regression and ordinal tasks."""
