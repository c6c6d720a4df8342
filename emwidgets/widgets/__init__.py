"""ipywidgets front end: a session model, views, and the explorer that lays them out."""

from .explorer import EMExplorer
from .session import FitSession, Snapshot, snapshot_from_estimator, snapshot_from_live
from .views import AssignmentPlot, ConvergencePlot, RestartGallery

__all__ = ["AssignmentPlot", "ConvergencePlot", "EMExplorer", "FitSession", "RestartGallery",
           "Snapshot", "snapshot_from_estimator", "snapshot_from_live"]
