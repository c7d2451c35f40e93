# kup-sim host stand-ins: helpers shared by every script in ../bin (POSIX sh, sourced).
#
# Environment (set by sshd's SetEnv, see kup_sim::hosts):
#   KUP_HOST_ROOT  the host's fake root directory (/etc, /var and /proc live under it)
#   KUP_HOST_NAME  the host's node name
#   KUP_SIM_ADMIN  the simulator's admin base URL, http://127.0.0.1:PORT/_sim
#   KUP_CLUSTER    the kubeadm cluster the host belongs to
#   KUP_HOSTS_DIR  the directory kup_sim::hosts::Hosts::start set up (optional; its
#                  admin_url file, when present, overrides KUP_SIM_ADMIN)
#
# Rules: every expansion is quoted, nothing is eval'ed, external tools are called by absolute
# path (the stand-ins shadow cat, tee, test and sed on PATH).
# The helpers return results in kup_* variables that the scripts read:
# shellcheck disable=SC2034

kup_me=${0##*/}
KUP_NL='
'

if [ -z "${KUP_HOST_ROOT:-}" ] || [ ! -d "$KUP_HOST_ROOT" ]; then
    printf '%s\n' "$kup_me: KUP_HOST_ROOT is not set or not a directory (kup-sim host stand-in)" >&2
    exit 127
fi
KUP_PKGS=$KUP_HOST_ROOT/var/lib/kup-pkgs
if [ -n "${KUP_HOSTS_DIR:-}" ] && [ -r "$KUP_HOSTS_DIR/admin_url" ]; then
    IFS= read -r KUP_SIM_ADMIN <"$KUP_HOSTS_DIR/admin_url" || :
fi

# kup_sys NAME: set kup_sys_path to the system's NAME (never a stand-in).
kup_sys() {
    for kup_d in /usr/bin /bin /usr/sbin /sbin; do
        if [ -x "$kup_d/$1" ]; then
            kup_sys_path=$kup_d/$1
            return 0
        fi
    done
    printf '%s\n' "$kup_me: $1 is not installed on this machine (needed by the kup-sim stand-ins)" >&2
    exit 127
}

# kup_oneline TEXT: kup_r = TEXT with newlines replaced by spaces.
kup_oneline() {
    kup_r=
    kup_s=$1
    while :; do
        case $kup_s in
            *"$KUP_NL"*)
                kup_r=$kup_r${kup_s%%"$KUP_NL"*}' '
                kup_s=${kup_s#*"$KUP_NL"}
                ;;
            *)
                kup_r=$kup_r$kup_s
                break
                ;;
        esac
    done
}

# kup_log WORD...: append one line (the words separated by single spaces) to calls.log.
kup_log() {
    kup_ifs=$IFS
    IFS=' '
    kup_line="$*"
    IFS=$kup_ifs
    kup_oneline "$kup_line"
    printf '%s\n' "$kup_r" >>"$KUP_HOST_ROOT/calls.log"
}

kup_die() { # STATUS MESSAGE
    printf '%s\n' "$2" >&2
    exit "$1"
}

# kup_map PATH: kup_mapped = PATH under the host root when it is in /etc, /proc or /var.
kup_map() {
    case $1 in
        /etc | /etc/* | /proc | /proc/* | /var | /var/*)
            case $1 in
                */../* | */..)
                    kup_die 1 "$kup_me: $1: paths with .. are refused on a kup-sim host"
                    ;;
            esac
            kup_mapped=$KUP_HOST_ROOT$1
            ;;
        *) kup_mapped=$1 ;;
    esac
}

# kup_read FILE: kup_v = first line of FILE; false when FILE is missing.
kup_read() {
    kup_v=
    [ -f "$1" ] || return 1
    IFS= read -r kup_v <"$1" || [ -n "$kup_v" ]
}

# kup_installed PKG: kup_v = installed version (1.30.9); false when not installed.
kup_installed() {
    kup_read "$KUP_PKGS/$1"
}

kup_held() {
    [ -f "$KUP_PKGS/$1.hold" ]
}

# kup_is_version S: S is MAJOR.MINOR.PATCH.
kup_is_version() {
    case $1 in
        '' | *[!0-9.]* | .* | *. | *..*) return 1 ;;
    esac
    kup_t=${1#*.}
    case $kup_t in
        *.*.*) return 1 ;;
        *.*) return 0 ;;
    esac
    return 1
}

# kup_vercmp A B: kup_cmp = -1, 0 or 1 (MAJOR.MINOR.PATCH, numeric).
kup_vercmp() {
    kup_a=$1
    kup_b=$2
    kup_cmp=0
    for kup_i in 1 2 3; do
        kup_x=${kup_a%%.*}
        kup_y=${kup_b%%.*}
        kup_a=${kup_a#*.}
        kup_b=${kup_b#*.}
        if [ "$kup_x" -lt "$kup_y" ]; then
            kup_cmp=-1
            return 0
        elif [ "$kup_x" -gt "$kup_y" ]; then
            kup_cmp=1
            return 0
        fi
    done
}

# kup_os: kup_os_id (debian, fedora, ...) and kup_family (debian | fedora).
kup_os() {
    kup_os_id=
    if [ -f "$KUP_HOST_ROOT/etc/os-release" ]; then
        while IFS= read -r kup_l || [ -n "$kup_l" ]; do
            case $kup_l in
                ID=*)
                    kup_os_id=${kup_l#ID=}
                    kup_os_id=${kup_os_id#\"}
                    kup_os_id=${kup_os_id%\"}
                    ;;
            esac
        done <"$KUP_HOST_ROOT/etc/os-release"
    fi
    case $kup_os_id in
        debian | ubuntu) kup_family=debian ;;
        fedora | rhel | centos | rocky | almalinux) kup_family=fedora ;;
        *) kup_family=unknown ;;
    esac
}

# kup_require_family FAMILY: behave as a missing command on other distributions.
kup_require_family() {
    kup_os
    if [ "$kup_family" != "$1" ]; then
        kup_die 127 "$kup_me: command not found"
    fi
}

# kup_http METHOD PATH [CURL ARGS...]: call $KUP_SIM_ADMIN/kubeadm/$KUP_CLUSTER/PATH.
# Sets kup_status (HTTP status, 000 when unreachable) and kup_body; true on 2xx.
kup_http() {
    kup_sys curl
    kup_m=$1
    kup_p=$2
    shift 2
    if kup_out=$("$kup_sys_path" -sS --max-time 120 -X "$kup_m" -w "$KUP_NL%{http_code}" "$@" \
        "${KUP_SIM_ADMIN:-http://127.0.0.1:1/_sim}/kubeadm/${KUP_CLUSTER:-}/$kup_p" 2>&1); then
        kup_status=${kup_out##*"$KUP_NL"}
        kup_body=${kup_out%"$KUP_NL"*}
    else
        kup_status=000
        kup_body="cannot reach the kup simulator at ${KUP_SIM_ADMIN:-?}: $kup_out"
    fi
    case $kup_status in
        2??) return 0 ;;
    esac
    return 1
}

# kup_body_out / kup_body_err: print the last response body (with a final newline).
kup_body_out() {
    case $kup_body in
        '') ;;
        *"$KUP_NL") printf '%s' "$kup_body" ;;
        *) printf '%s\n' "$kup_body" ;;
    esac
}
kup_body_err() {
    kup_body_out >&2
}

# kup_repo_minor: kup_minor = the Kubernetes minor of the host's package repository
# (apt: sources.list.d/kubernetes.list, dnf: yum.repos.d/kubernetes.repo). Status 1: no repo
# file; 2: malformed.
kup_repo_minor() {
    kup_minor=
    kup_os
    if [ "$kup_family" = debian ]; then
        kup_f=$KUP_HOST_ROOT/etc/apt/sources.list.d/kubernetes.list
        kup_pat=deb
    else
        kup_f=$KUP_HOST_ROOT/etc/yum.repos.d/kubernetes.repo
        kup_pat=rpm
    fi
    [ -f "$kup_f" ] || return 1
    while IFS= read -r kup_l || [ -n "$kup_l" ]; do
        case $kup_l in
            *"https://pkgs.k8s.io/core:/stable:/v"*"/$kup_pat/"*)
                case $kup_l in
                    '#'*) continue ;;
                esac
                kup_m=${kup_l#*https://pkgs.k8s.io/core:/stable:/v}
                kup_m=${kup_m%%/*}
                case $kup_m in
                    *[!0-9.]* | .* | *. | *.*.* | '') return 2 ;;
                    *.*) kup_minor=$kup_m ;;
                    *) return 2 ;;
                esac
                ;;
        esac
    done <"$kup_f"
    [ -n "$kup_minor" ] || return 2
}

# kup_refresh_cache MINOR: fetch the versions the repository of MINOR offers into the
# package cache (.repo: one version per line, oldest first; .repo-minor: MINOR). False (and
# an empty cache) when the simulator has no such repository.
kup_refresh_cache() {
    /bin/mkdir -p "$KUP_PKGS"
    if kup_http GET "packages/$1"; then
        kup_body_out >"$KUP_PKGS/.repo"
        printf '%s\n' "$1" >"$KUP_PKGS/.repo-minor"
        return 0
    fi
    : >"$KUP_PKGS/.repo"
    printf '%s\n' "$1" >"$KUP_PKGS/.repo-minor"
    return 1
}

# kup_offered VERSION: VERSION is in the package cache.
kup_offered() {
    [ -f "$KUP_PKGS/.repo" ] || return 1
    while IFS= read -r kup_l || [ -n "$kup_l" ]; do
        [ "$kup_l" = "$1" ] && return 0
    done <"$KUP_PKGS/.repo"
    return 1
}

# kup_cached_versions_desc: the cached versions, newest first, one per line (stdout).
kup_cached_versions_desc() {
    [ -f "$KUP_PKGS/.repo" ] || return 0
    kup_acc=
    while IFS= read -r kup_l || [ -n "$kup_l" ]; do
        [ -n "$kup_l" ] && kup_acc=$kup_l$KUP_NL$kup_acc
    done <"$KUP_PKGS/.repo"
    printf '%s' "$kup_acc"
}

# kup_k8s_pkg NAME: NAME is a package of the Kubernetes repository.
kup_k8s_pkg() {
    case $1 in
        kubeadm | kubelet | kubectl) return 0 ;;
    esac
    return 1
}

# kup_set_installed PKG VERSION
kup_set_installed() {
    /bin/mkdir -p "$KUP_PKGS"
    printf '%s\n' "$2" >"$KUP_PKGS/$1"
}

# kup_write_manifests VERSION: the control-plane static pod manifests under
# /etc/kubernetes/manifests name images of VERSION (control-plane hosts only).
kup_write_manifests() {
    kup_md=$KUP_HOST_ROOT/etc/kubernetes/manifests
    [ -d "$kup_md" ] || return 0
    for kup_c in kube-apiserver kube-controller-manager kube-scheduler; do
        printf '%s\n' "apiVersion: v1" "kind: Pod" "metadata:" \
            "  name: $kup_c" "  namespace: kube-system" \
            "  labels:" "    component: $kup_c" "    tier: control-plane" \
            "spec:" "  hostNetwork: true" "  priorityClassName: system-node-critical" \
            "  containers:" "  - name: $kup_c" \
            "    image: registry.k8s.io/$kup_c:v$1" "    command:" "    - $kup_c" \
            >"$kup_md/$kup_c.yaml"
    done
}
