r"""Optional Python dependencies: detect what is missing, say how to install it, install it.

QGIS ships numpy and GDAL everywhere, but not always scipy, scikit-learn,
matplotlib or pykrige.  The plugin must still load without them; the
algorithms that need them explain the fix through ``canExecute``, and the
plugin offers to install them into the Python QGIS runs (``plugin.py`` shows
the offer; this module finds that Python, builds the pip command and runs it).
Nothing here imports Qt or QGIS.

Where pip installs, per platform:

- Linux (Debian/Ubuntu and others): ``--user`` (never into the system's
  directories, even as root), plus ``--break-system-packages`` when that
  Python is marked externally managed (PEP 668: Debian 12+, Ubuntu 23.04+);
- Windows (OSGeo4W and the standalone installer, both OSGeo4W inside): into
  QGIS's own ``apps\\Python3x`` when writable, else ``--user``;
- macOS (QGIS.app): ``--user``, so the signed application bundle is not modified.
"""

import importlib
import importlib.util
import os
import platform
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

# import name -> pip / distribution name
PIP_NAMES = {
    "numpy": "numpy",
    "scipy": "scipy",
    "sklearn": "scikit-learn",
    "pykrige": "pykrige",
    "matplotlib": "matplotlib",
}
# what the in-QGIS installer asks pip for (a floor, so that pip picks a wheel built for the
# user's Python; the tested versions are pinned in requirements*.txt)
PIP_SPECS = {
    "pykrige": "pykrige>=1.7.3",
}
# import name -> Debian package (None: not packaged in Debian 12 or 13)
DEBIAN_NAMES = {
    "numpy": "python3-numpy",
    "scipy": "python3-scipy",
    "sklearn": "python3-sklearn",
    "pykrige": None,
    "matplotlib": "python3-matplotlib",
}


def missing_modules(modules, quick=False):
    """Return the import names in ``modules`` that cannot be imported.

    ``quick``: only look whether each is installed (``find_spec``), without importing it
    (QGIS's start-up need not pay for importing scikit-learn).
    """
    missing = []
    for name in modules:
        try:
            if quick:
                if sys.modules.get(name, False) is None or importlib.util.find_spec(name) is None:
                    missing.append(name)
            else:
                importlib.import_module(name)
        except (ImportError, ValueError):
            missing.append(name)
    return missing


def externally_managed():
    """True when this Python is marked externally managed (PEP 668), as Debian 12's is."""
    return Path(sysconfig.get_paths()["stdlib"], "EXTERNALLY-MANAGED").is_file()


def in_virtualenv():
    """True when this Python runs in a virtual environment (pip installs there, not ``--user``)."""
    return sys.prefix != sys.base_prefix


def qgis_python(system=None):
    """The Python executable of the interpreter QGIS runs.

    Inside QGIS ``sys.executable`` is QGIS itself (``/usr/bin/qgis``, ``qgis-bin.exe``,
    ``QGIS.app/Contents/MacOS/QGIS``), so the interpreter is looked for beside the
    running Python's prefix, with the same major.minor version.  Raises ``FileNotFoundError``
    with the places looked at when there is none.
    """
    system = system or platform.system()
    exe = Path(sys.executable)
    if exe.name.lower().startswith("python"):
        return str(exe)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    prefixes = [Path(sys.prefix), Path(sys.base_prefix)]
    if system == "Windows":  # OSGeo4W: <root>\apps\Python3x\python.exe
        candidates = [p / "python.exe" for p in prefixes]
    elif system == "Darwin":  # QGIS.app/Contents/MacOS/bin/python3 and Frameworks' Python
        candidates = [exe.parent / "bin" / f"python{version}", exe.parent / "bin" / "python3"]
        candidates += [p / "bin" / f"python{version}" for p in prefixes]
        candidates += [p / "bin" / "python3" for p in prefixes]
    else:
        candidates = [p / "bin" / f"python{version}" for p in prefixes]
        candidates += [Path(w) for w in (shutil.which(f"python{version}"),) if w]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    looked = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"QGIS's Python {version} was not found (looked at {looked})")


def _use_user_site(system):
    if in_virtualenv():
        return False
    if system == "Windows":
        return not os.access(sysconfig.get_paths()["purelib"], os.W_OK)
    return True


def pip_install_args(modules, python=None, system=None):
    """The argument list that installs ``modules`` (import names) into QGIS's Python."""
    system = system or platform.system()
    args = [python or qgis_python(system), "-m", "pip", "install",
            "--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
    if _use_user_site(system):
        args.append("--user")
    if system == "Linux" and externally_managed():
        args.append("--break-system-packages")
    return args + [PIP_SPECS.get(m, PIP_NAMES.get(m, m)) for m in modules]


def install_command(modules, system=None):
    """The terminal command that installs ``modules`` into the Python QGIS runs on ``system``."""
    system = system or platform.system()
    pip = " ".join(PIP_NAMES.get(m, m) for m in modules)
    if system == "Windows":
        return f"in the OSGeo4W Shell: python -m pip install {pip}"
    if system == "Darwin":
        return f"/Applications/QGIS.app/Contents/MacOS/bin/python3 -m pip install --user {pip}"
    debian = Path("/etc/debian_version").is_file()
    apt = [DEBIAN_NAMES[m] for m in modules if debian and DEBIAN_NAMES.get(m)]
    no_apt = [PIP_NAMES.get(m, m) for m in modules if not (debian and DEBIAN_NAMES.get(m))]
    parts = []
    if apt:
        parts.append("sudo apt install " + " ".join(apt))
    if no_apt:
        flag = " --break-system-packages" if externally_managed() else ""
        parts.append(f"python3 -m pip install --user{flag} " + " ".join(no_apt))
    return " and ".join(parts)


def missing_message(modules):
    """A user-facing message for the missing ``modules``; empty when none is missing.

    In QGIS desktop the plugin registers an offer (:func:`set_offer`): the message then
    also points to the "Install" button this call puts in QGIS's message bar.
    """
    missing = missing_modules(modules)
    if not missing:
        return ""
    names = ", ".join(PIP_NAMES.get(m, m) for m in missing)
    offered = offer_install(missing)
    how = (f"Click 'Install {names}' in the message bar at the top of the QGIS window, "
           "or install them from a terminal with: " if offered else "Install them with: ")
    return (
        f"This algorithm needs the Python package(s) {names}, which the Python used by QGIS "
        f"cannot import. {how}{install_command(missing)}"
        + ("" if offered else "; then restart QGIS.")
    )


_offer = None


def set_offer(callback):
    """Register ``callback(missing) -> shown`` that offers the install in the GUI (None: no GUI)."""
    global _offer
    _offer = callback


def offer_install(missing):
    """Call the registered offer for ``missing``; whether it is shown (False: no QGIS desktop)."""
    if _offer is None or not missing:
        return False
    return bool(_offer(list(missing)))


PIP_STAGES = (("Looking in", 5), ("Collecting", 15), ("Downloading", 35), ("Processing", 35),
              ("Requirement already satisfied", 50), ("Installing collected packages", 80),
              ("Successfully installed", 100))


def install(modules, on_line=None, on_progress=None, is_canceled=None, extra_args=(), env=None):
    """Install ``modules`` (import names) into QGIS's Python with pip; returns ``(ok, output)``.

    ``on_line(text)`` gets pip's output line by line, ``on_progress(percent)`` a coarse
    progress from pip's stages, and ``is_canceled()`` stops pip when it returns True.
    ``extra_args`` go to pip (e.g. ``--no-index --find-links DIR``).  On success the new
    modules are importable in this process at once (:func:`refresh_import_paths`).
    """
    try:
        args = pip_install_args(modules) + list(extra_args)
    except FileNotFoundError as exc:
        return False, str(exc)
    kwargs = {}
    if platform.system() == "Windows":  # no console window flashing up from QGIS
        kwargs["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
    run_env = dict(os.environ if env is None else env)
    run_env.pop("PYTHONEXECUTABLE", None)
    lines = [" ".join(args)]
    try:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=run_env, **kwargs)
    except OSError as exc:
        return False, f"could not start {args[0]}: {exc}"
    progress = 0
    for line in proc.stdout:
        line = line.rstrip()
        lines.append(line)
        if on_line:
            on_line(line)
        for prefix, percent in PIP_STAGES:
            if line.startswith(prefix) and percent > progress:
                progress = percent
                if on_progress:
                    on_progress(progress)
        if is_canceled and is_canceled():
            proc.terminate()
            proc.wait()
            return False, "\n".join(lines + ["canceled"])
    code = proc.wait()
    output = "\n".join(lines)
    if code != 0:
        if "No module named pip" in output:
            output += ("\npip is not installed for QGIS's Python"
                       + (": sudo apt install python3-pip" if Path("/etc/debian_version").is_file()
                          else ""))
        return False, output
    refresh_import_paths()
    still = missing_modules(modules)
    if still:
        return False, output + f"\ninstalled, but still not importable: {', '.join(still)}"
    return True, output


def refresh_import_paths():
    """Make what pip just installed importable in this process, without restarting QGIS.

    The user site-packages folder is on ``sys.path`` only if it existed when Python
    started, which it often did not before a first ``--user`` install.
    """
    user_site = site.getusersitepackages()
    if site.ENABLE_USER_SITE and os.path.isdir(user_site) and user_site not in sys.path:
        site.addsitedir(user_site)
    importlib.invalidate_caches()
