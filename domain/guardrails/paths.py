"""What a path names: the root, a home directory, system files, secrets, persistence hooks, logs, this platform."""

from __future__ import annotations

import posixpath
import re

_HOME = r"(?:~[\w.-]*|\$\{?HOME\}?|/home/[^/\s]+|/root|/Users/[^/\s]+)"
_SYSTEM_TOP = {"bin", "boot", "dev", "etc", "lib", "lib32", "lib64", "libx32", "opt", "proc", "root", "sbin", "srv",
               "sys", "usr", "var", "home", "mnt", "media", "snap", "Users", "System", "Library", "Applications"}
_BLOCK_DEVICE = re.compile(r"^/dev/(?:sd[a-z]|hd[a-z]|vd[a-z]|xvd[a-z]|nvme\d|mmcblk\d|disk\d|rdisk\d|md\d|dm-\d|"
                           r"mapper/|loop\d|sr\d|nbd\d|root|mem$|kmem$|port$)")
_SECRET = re.compile(
    r"(?:^|/)(?:etc/shadow|etc/gshadow|etc/master\.passwd|etc/security/opasswd)$|"
    r"\.ssh/(?:id_[\w-]+|identity)(?<!\.pub)$|\.ssh/[^/]*(?:_rsa|_ed25519|_ecdsa|_dsa|\.pem|\.key)$|"
    r"\.aws/credentials|\.aws/config$|\.config/gcloud/|\.azure/(?:accessTokens|msal)|\.kube/config|"
    r"\.docker/config\.json|(?:^|/)\.netrc$|(?:^|/)\.pgpass$|\.git-credentials|(?:^|/)\.npmrc$|(?:^|/)\.pypirc$|"
    r"(?:^|/)\.env(?:\.(?!example|sample|template|dist)[\w-]+)?$|\.gnupg/(?:private-keys|secring)|\.password-store|"
    r"Keychains/|\.keychain(?:-db)?$|\.local/share/keyrings|Login Data$|cookies\.sqlite$|/proc/(?:\d+|self|\*)/environ|"
    r"/var/run/secrets/|(?:^|/)\.vault-token$|(?:^|/)credentials\.json$|\.hybrid-llm/.*(?:secret|lockdown)|"
    r"(?:^|/)\.?htpasswd$|(?:^|/)secrets?\.(?:ya?ml|json|toml)$|/etc/ssl/private/|(?:^|/)private[_-]?key|"
    r"(?:^|/)wp-config\.php$|(?:^|/)\.bash_history$|(?:^|/)\.zsh_history$"
)
_SECRET_DIR = re.compile(r"(?:^|/)(?:\.ssh|\.aws|\.gnupg|\.kube|\.password-store|\.config/gcloud)/?$")
_PERSIST = re.compile(
    r"^/etc/cron|^/var/spool/cron|/etc/systemd/|/lib/systemd/system/|/usr/lib/systemd/|\.config/systemd/|"
    r"/etc/init\.d/|/etc/rc\.local|/etc/rc\d\.d/|(?:^|/)\.(?:bashrc|bash_profile|bash_login|profile|zshrc|zprofile|"
    r"zshenv|bash_logout|xinitrc|xprofile)$|^/etc/(?:profile|bash\.bashrc|zsh/|environment$|ld\.so\.preload)|"
    r"\.ssh/authorized_keys|\.config/autostart(?:/|$)|LaunchAgents(?:/|$)|LaunchDaemons(?:/|$)|/etc/update-motd\.d/|"
    r"/etc/xdg/autostart/|\.config/fish/config\.fish")
_LOGS = re.compile(r"^/var/log(?:/|$)|^/var/adm/|/var/audit|(?:^|/)wtmp$|(?:^|/)btmp$|(?:^|/)lastlog$|/var/run/utmp")
_HISTORY = re.compile(r"(?:^|/)\.(?:bash|zsh|sh|python|mysql|psql|node_repl|sqlite|lesshst|)_?history$|"
                      r"(?:^|/)\.local/share/fish/fish_history$")
_PLATFORM = re.compile(r"(?:^|/)\.hybrid-llm(?:/|$)|(?:^|/)uploads/\.versions(?:/|$)")
_PRIV = re.compile(r"^/etc/sudoers|^/etc/(?:passwd|shadow|group|gshadow)$|^/etc/pam\.d/|^/etc/security/")
_DEFENCE = re.compile(r"^/proc/sys/kernel/(?:randomize_va_space|yama/|modules_disabled)|^/etc/selinux/config|"
                      r"^/etc/audit/|^/etc/apparmor")
_IMPORTANT_HOME = re.compile(r"^(?:Documents|Desktop|Pictures|Photos|Music|Videos|Downloads|projects?|src|code|work|"
                             r"repos?|git|\.ssh|\.gnupg|\.config|\.local|Library|dev)(?:/\*?)?$")


def clean(path: str) -> str:
    """Canonical form for matching: quotes gone, `//` and `/./` and `..` collapsed, $HOME spelled `~`."""
    p = path.strip().strip("'\"")
    p = re.sub(r"^(?:\$\{HOME\}|\$HOME)", "~", p)
    p = re.sub(r"^/(?:home/[^/\s]+|root|Users/[^/\s]+)(?=/|$)", "~", p) if not p.startswith("/home/*") else p
    if p.startswith("/"):
        trail = "/" if p.endswith("/") and len(p) > 1 else ""
        p = posixpath.normpath(p) + trail
        if p.startswith("//"):
            p = "/" + p.lstrip("/")
    elif p.startswith("~"):
        head, _, rest = p.partition("/")
        p = head + ("/" + posixpath.normpath(rest) if rest else "")
        p = p.replace("/.", "") if p.endswith("/.") else p
    return p


def is_root(p: str) -> bool:
    return bool(re.fullmatch(r"/+(?:\*|\.\*|\.|\{[^}]*\})?", p))


def is_home(p: str) -> bool:
    return bool(re.fullmatch(r"~[\w.-]*/?(?:\*|\.\*)?|/home/?\*?|/home/\*/?|/Users/?\*?", p))


def home_sub(p: str) -> str | None:
    m = re.match(r"~[\w.-]*/(.+)", p)
    return m.group(1) if m else None


def is_system(p: str) -> bool:
    if not p.startswith("/"):
        return False
    top = p.strip("/").split("/", 1)[0]
    if top in ("tmp", "var") and (p.startswith("/tmp") or p.startswith("/var/tmp")):
        return False
    return top in _SYSTEM_TOP


def is_system_top(p: str) -> bool:
    """A whole system directory (/etc, /usr/*, /var/lib) rather than one file in it."""
    parts = [x for x in p.strip("/").split("/") if x not in ("*", "")]
    return p.startswith("/") and len(parts) <= 2 and is_system(p) and not is_temp(p) \
        and (len(parts) == 1 or parts[0] in ("usr", "var", "lib", "etc", "boot"))


def is_temp(p: str) -> bool:
    return bool(re.match(r"^/(?:tmp|var/tmp|dev/shm)/[^*]", p))


def is_block_device(p: str) -> bool:
    return bool(_BLOCK_DEVICE.match(p))


def is_secret(p: str) -> bool:
    return bool(_SECRET.search(p))


def is_secret_dir(p: str) -> bool:
    return bool(_SECRET_DIR.search(p))


def is_persistence(p: str) -> bool:
    return bool(_PERSIST.search(p))


def is_log(p: str) -> bool:
    return bool(_LOGS.search(p))


def is_history(p: str) -> bool:
    return bool(_HISTORY.search(p))


def is_platform(p: str) -> bool:
    return bool(_PLATFORM.search(p))


def is_priv_file(p: str) -> bool:
    return bool(_PRIV.search(p))


def is_defence(p: str) -> bool:
    return bool(_DEFENCE.search(p))


def is_important_home(sub: str) -> bool:
    return bool(_IMPORTANT_HOME.match(sub))
