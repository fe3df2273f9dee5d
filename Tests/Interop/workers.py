"""Client connections spread over worker processes. A process may hold only
as many descriptors as its hard limit (20,000 here, and not raisable in a
container without CAP_SYS_RESOURCE), so a client that needs more runs one
forked worker per share of at most PER_WORKER connections. Each worker is
called as `target(count, *args, barrier, ready, results)`: the barrier lets
them act at the same moment, and the two queues carry what they report."""
import multiprocessing
import resource

PER_WORKER = 10000


class Workers:
    def __init__(self, target, count, *args):
        shares = [PER_WORKER] * (count // PER_WORKER) + ([count % PER_WORKER] if count % PER_WORKER else [])
        context = multiprocessing.get_context("fork")
        self.barrier = context.Barrier(len(shares))
        self.ready, self.results = context.Queue(), context.Queue()
        self.procs = [context.Process(target=target, args=(n, *args, self.barrier, self.ready, self.results))
                      for n in shares]
        for p in self.procs:
            p.start()

    def gather(self, queue, timeout):
        """One report from each worker, from `queue`."""
        return [queue.get(timeout=timeout) for _ in self.procs]

    def join(self):
        for p in self.procs:
            p.join(timeout=10)


def allow_descriptors(count):
    """Raises this process's soft descriptor limit to hold `count` sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, count + 256)), hard))
