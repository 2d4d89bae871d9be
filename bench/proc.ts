/**
 * @module Process statistics for the bench, read from Linux /proc: child processes, CPU time of a
 * process and of each of its threads, resident memory, and how busy the whole machine was. Every
 * reader answers undefined (or an empty set) where /proc is missing, so the bench still runs.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

/** Child processes of this Node process (Linux /proc; empty elsewhere). */
export function childPids(): Set<number> {
  const out = new Set<number>();
  try {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        // pid (comm) state ppid …: comm may hold spaces, so read after the last ')'.
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid === process.pid) out.add(Number(entry));
      } catch {
        // The process ended while we looked.
      }
    }
  } catch {
    // No /proc.
  }
  return out;
}

/** The command name of a process (its `comm`). */
export function procName(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;

/** CPU time (user + system) a process has used so far, in ms (resolution 1000 / CLK_TCK ms). */
export function cpuMsOf(pid: number | undefined, statPath = `/proc/${pid}/stat`): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(statPath, 'utf8');
    // After "pid (comm) ", field 3 (state) is index 0: utime (14) and stime (15) are 11 and 12.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
  } catch {
    return undefined;
  }
}

/** Resident set size now and at peak (VmHWM) of a process, in MiB. */
export function rssOf(pid: number | undefined): { rssMiB: number; peakMiB: number } | undefined {
  if (pid === undefined) return undefined;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    return { rssMiB: kib('VmRSS') / 1024, peakMiB: kib('VmHWM') / 1024 };
  } catch {
    return undefined;
  }
}

/** CPU time (ms) of each thread of a process so far, by thread id: tells one saturated thread from spread load. */
export function threadCpuMsOf(pid: number | undefined): Map<number, number> {
  const out = new Map<number, number>();
  if (pid === undefined) return out;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const ms = cpuMsOf(Number(tid), `/proc/${pid}/task/${tid}/stat`);
      if (ms !== undefined) out.set(Number(tid), ms);
    }
  } catch {
    // The process is gone, or no /proc.
  }
  return out;
}

/** The machine's CPU time so far, in ms summed over all CPUs: busy (anything but idle and iowait) and total. */
export function machineCpuMs(): { busyMs: number; totalMs: number } | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    // cpu user nice system idle iowait irq softirq steal guest guest_nice (guest time is inside user).
    const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    const idle = f[3]! + f[4]!;
    return { busyMs: ((total - idle) * 1000) / CLK_TCK, totalMs: (total * 1000) / CLK_TCK };
  } catch {
    return undefined;
  }
}
