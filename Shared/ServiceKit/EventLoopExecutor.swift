import NIOCore
import NIOPosix

/// Runs Swift concurrency's tasks on NIO's event loop threads instead of a second pool of threads.
///
/// Every database query and HTTP response otherwise crosses twice between the two pools (the task hands the query
/// to an event loop; the event loop resumes the task on the cooperative pool), and on 2 cores those thread switches
/// were the largest single cost in a profile of the Orchestrator (a fifth of its CPU time in `finish_task_switch`).
/// Safe because nothing in these services blocks a task: the blocking rabbitmq-c calls run on threads of their own.
public enum EventLoopExecutor {
    /// Call first thing in `main`, on the main thread, once.
    public static func install() {
        _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    }
}
