#!/bin/sh
# /init of the sandbox microVM (busybox). Job in: a tar on /dev/vda (job/env, job/run, work/...).
# Results out: a tar on /dev/vdb (out/rc, out/stdout, out/stderr, out/status, work/...). Then power off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_mmio virtio_blk; do insmod /lib/modules/$m.ko 2>/dev/null; done
i=0
while [ ! -b /dev/vdb ] && [ $i -lt 200 ]; do usleep 10000; i=$((i + 1)); done
mkdir -p /job /out
tar -xf /dev/vda -C / 2>/dev/null || { echo "sandbox-init: no job" > /dev/ttyS0; poweroff -f; }
. /job/env
mount -t tmpfs -o size=${WORK_KB}k,mode=0755 tmpfs /work
tar -xf /dev/vda -C / work 2>/dev/null
mount -t tmpfs -o size=${OUT_KB}k tmpfs /out
mount -t tmpfs -o size=16m,mode=1777 tmpfs /tmp
chown -R 65534:65534 /work
echo 1 > /proc/sys/vm/overcommit_memory 2>/dev/null
start=$(cut -d' ' -f1 /proc/uptime)
cd /work
(
  ulimit -u "$PIDS"; ulimit -f "$FILE_BLOCKS"; ulimit -t "$CPU_S"
  exec setsid su -s /bin/sh nobody -c "exec sh /job/run" > /out/stdout 2> /out/stderr
) &
pid=$!
( sleep "$WALL_S"; echo timeout > /out/status; kill -9 -$pid $pid 2>/dev/null ) &
watch=$!
wait $pid
echo $? > /out/rc
kill $watch 2>/dev/null
end=$(cut -d' ' -f1 /proc/uptime)
echo "$start $end" > /out/times
dmesg | grep -q -i "killed process" && echo memory >> /out/status
cd /
tar -cf /dev/vdb out work 2>/dev/null
sync
poweroff -f
