"""ipywidgets front end: a session model, views, and the explorer that lays them out."""

from .explorer import EMExplorer
from .family_explorer import FamilyExplorer, FamilySession, ProfilePlot
from .hmm_explorer import HMMExplorer, HMMSession
from .model_explorer import ModelExplorer
from .selection_explorer import ModelSelectionExplorer
from .session import FitSession, Snapshot, snapshot_from_estimator, snapshot_from_live
from .views import AssignmentPlot, ConvergencePlot, RestartGallery, SelectionPlot

__all__ = ["AssignmentPlot", "ConvergencePlot", "EMExplorer", "FamilyExplorer", "FamilySession",
           "FitSession", "HMMExplorer", "HMMSession", "ModelExplorer", "ProfilePlot",
           "ModelSelectionExplorer", "RestartGallery", "SelectionPlot",
           "Snapshot", "snapshot_from_estimator", "snapshot_from_live"]
