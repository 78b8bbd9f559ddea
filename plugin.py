"""QGIS plugin object: registers the Processing provider, offers missing dependencies, nothing numeric."""

from qgis.core import Qgis, QgsApplication, QgsMessageLog, QgsTask

from .algorithms import deps

TITLE = "Geochemical Image Fusion"


class DependencyInstallTask(QgsTask):
    """Installs missing Python packages with pip in the background (QGIS's task manager).

    Progress follows pip's stages; ``done(ok, output)`` is called on the main thread.
    """

    def __init__(self, missing, done, extra_args=()):
        names = ", ".join(deps.PIP_NAMES.get(m, m) for m in missing)
        super().__init__(f"Installing {names}", QgsTask.Flag.CanCancel)
        self.missing = list(missing)
        self.done = done
        self.extra_args = tuple(extra_args)
        self.ok, self.output = False, ""

    def run(self):
        self.ok, self.output = deps.install(
            self.missing, on_progress=self.setProgress, is_canceled=self.isCanceled,
            extra_args=self.extra_args)
        return self.ok

    def finished(self, result):
        # on the main thread: the new modules become importable here too
        deps.refresh_import_paths()
        self.done(self.ok and bool(result), self.output)


def _progress_bar(parent):
    from qgis.PyQt.QtCore import pyqtSlot
    from qgis.PyQt.QtWidgets import QProgressBar

    class PercentBar(QProgressBar):
        @pyqtSlot(float)
        def set_percent(self, value):
            self.setValue(int(value))

    bar = PercentBar(parent)
    bar.setRange(0, 100)
    return bar


class GeochemFusionPlugin:
    """Plugin entry object created by :func:`geochem_fusion.classFactory`."""

    def __init__(self, iface):
        self.iface = iface
        self.provider = None
        self.offer_item = None
        self.task = None

    def initProcessing(self):
        from .provider import GeochemFusionProvider

        self.provider = GeochemFusionProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):
        self.initProcessing()
        deps.set_offer(self.offer_install)
        missing = deps.missing_modules(self.required_modules(), quick=True)
        if missing:
            self.offer_install(missing)

    def required_modules(self):
        """Every optional module some algorithm of the provider needs (import names, in order)."""
        names = []
        for alg in self.provider.algorithms() if self.provider else ():
            names += [m for m in getattr(alg, "REQUIRES", ()) if m not in names]
        return names

    # -- installing missing dependencies from inside QGIS ------------------------------
    def offer_install(self, missing):
        """A message bar with an "Install" button for the ``missing`` modules (once at a time).

        Returns whether the offer is on screen (only the main thread makes widgets).
        """
        from qgis.PyQt.QtCore import QThread
        from qgis.PyQt.QtWidgets import QPushButton

        if QThread.currentThread() is not QgsApplication.instance().thread():
            return False  # canExecute from an algorithm running in a task: no widgets there
        bar = self.iface.messageBar()
        if self.task is not None or any(item is self.offer_item for item in bar.items()):
            return True  # installing, or the offer is still on screen
        names = ", ".join(deps.PIP_NAMES.get(m, m) for m in missing)
        item = bar.createMessage(
            TITLE, f"Some algorithms need {names}, which QGIS's Python cannot import. "
            f"Terminal alternative: {deps.install_command(missing)}")
        button = QPushButton(f"Install {names}", item)
        button.clicked.connect(lambda: self.install(missing))
        item.layout().addWidget(button)
        self.offer_item = item
        bar.pushWidget(item, Qgis.MessageLevel.Warning)
        return True

    def _clear_offer(self):
        item, self.offer_item = self.offer_item, None
        bar = self.iface.messageBar()
        if item is not None and any(shown is item for shown in bar.items()):
            bar.popWidget(item)

    def install(self, missing):
        """Install ``missing`` in a background task, with a progress bar; returns the task."""
        self._clear_offer()
        names = ", ".join(deps.PIP_NAMES.get(m, m) for m in missing)
        bar = self.iface.messageBar()
        item = bar.createMessage(TITLE, f"Installing {names} into QGIS's Python…")
        progress = _progress_bar(item)
        item.layout().addWidget(progress)
        bar.pushWidget(item, Qgis.MessageLevel.Info)
        self.task = DependencyInstallTask(
            missing, lambda ok, output: self._installed(missing, item, ok, output))
        # a slot of the bar (main thread): pip's progress arrives queued from the task's thread
        self.task.progressChanged.connect(progress.set_percent)
        QgsApplication.taskManager().addTask(self.task)
        return self.task

    def _installed(self, missing, item, ok, output):
        self.task = None
        bar = self.iface.messageBar()
        try:
            bar.popWidget(item)
        except RuntimeError:  # already closed by the user
            pass
        names = ", ".join(deps.PIP_NAMES.get(m, m) for m in missing)
        QgsMessageLog.logMessage(output, TITLE, Qgis.MessageLevel.Info if ok else Qgis.MessageLevel.Critical)
        if ok:
            bar.pushMessage(TITLE, f"{names} installed: the algorithms that need it run now, "
                            "no restart needed.", Qgis.MessageLevel.Success, 10)
        else:
            last = [line for line in output.splitlines() if line.strip()][-1:] or ["no output"]
            bar.pushMessage(
                TITLE, f"Installing {names} failed ({last[0]}); pip's output is in the log "
                f"(View > Panels > Log Messages). Terminal alternative: {deps.install_command(missing)}",
                Qgis.MessageLevel.Critical, 0)

    def unload(self):
        deps.set_offer(None)
        self._clear_offer()
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
