#!/bin/sh
# Mount the cgroup hierarchies this kernel gives the container, as a full
# distribution's init does, so limits can be read at the usual paths.
# Pure cgroup v2: one hierarchy at /sys/fs/cgroup. Hybrid/v1: one per line of
# /proc/self/cgroup, with the same controller set as on the host.
if [ "$(wc -l < /proc/self/cgroup)" -eq 1 ]; then
    mount -t cgroup2 cgroup2 /sys/fs/cgroup
    exit 0
fi
mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
while IFS=: read -r id controllers _path; do
    case "$controllers" in
        "") [ "$id" = 0 ] && mkdir -p /sys/fs/cgroup/unified \
                && mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified ;;
        name=*) dir=/sys/fs/cgroup/${controllers#name=}
                mkdir -p "$dir" && mount -t cgroup -o "none,$controllers" cgroup "$dir" ;;
        *) dir=/sys/fs/cgroup/$controllers
           mkdir -p "$dir" && mount -t cgroup -o "$controllers" cgroup "$dir" ;;
    esac
done < /proc/self/cgroup
