// epoll(7) for saslgate-bench: Swift's Glibc module does not include <sys/epoll.h>.
#include <sys/epoll.h>
