//! Batched UDP I/O for the socket loop, Linux only: generic segmentation offload on send
//! (`UDP_SEGMENT`: one `sendmsg` carries up to 64 equal-size QUIC packets to one peer, the
//! kernel splits them) and generic receive offload (`UDP_GRO`: one `recvmsg` returns several
//! coalesced packets plus their segment size). Both cut the per-packet system calls that
//! dominate QUIC's cost next to TCP. Where the kernel refuses either, the loop falls back to
//! one packet per call (`send_to` / `recv_from`) and never retries the offload.
#![allow(unsafe_code)] // sendmsg / recvmsg / setsockopt with control messages; see each SAFETY

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

/// Most segments one GSO send may carry (Linux's UDP_MAX_SEGMENTS).
pub const MAX_SEGMENTS: usize = 64;

#[cfg(target_os = "linux")]
const UDP_SEGMENT: libc::c_int = 103;
#[cfg(target_os = "linux")]
const UDP_GRO: libc::c_int = 104;

/// Set the don't-fragment bit and ignore the kernel's path MTU cache (`IP_PMTUDISC_PROBE`), as
/// DPLPMTUD needs (RFC 8899 §3): a probe too large for the path is dropped, not fragmented.
#[cfg(target_os = "linux")]
pub fn set_dont_fragment(sock: &impl AsRawFd, v6: bool) -> bool {
    let (level, name, value) = if v6 {
        (
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_PROBE,
        )
    } else {
        (
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_PROBE,
        )
    };
    // SAFETY: valid fd, pointer to a c_int and its size.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    }
}

#[cfg(not(target_os = "linux"))]
pub fn set_dont_fragment(_sock: &impl AsRawFd, _v6: bool) -> bool {
    false
}

/// Ask for GRO on `sock`; whether the kernel accepted.
#[cfg(target_os = "linux")]
pub fn enable_gro(sock: &impl AsRawFd) -> bool {
    let on: libc::c_int = 1;
    // SAFETY: valid fd, pointer to a c_int and its size.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_UDP,
            UDP_GRO,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    }
}

#[cfg(not(target_os = "linux"))]
pub fn enable_gro(_sock: &impl AsRawFd) -> bool {
    false
}

fn to_sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

fn from_sockaddr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in (family AF_INET) into the storage.
            let sin: &libc::sockaddr_in = unsafe { &*(ss as *const libc::sockaddr_storage).cast() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the kernel wrote a sockaddr_in6 (family AF_INET6) into the storage.
            let sin6: &libc::sockaddr_in6 =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Control-message buffer, aligned for `cmsghdr`.
#[repr(C, align(8))]
struct Cmsg([u8; 64]);

/// Send `buf` (packets of `segment` bytes each, the last possibly shorter) to `to` in one
/// `sendmsg` with `UDP_SEGMENT`. `segment == buf.len()` sends one plain datagram.
#[cfg(target_os = "linux")]
pub fn send_gso(
    sock: &impl AsRawFd,
    buf: &[u8],
    segment: usize,
    to: &SocketAddr,
) -> io::Result<usize> {
    let (mut ss, sslen) = to_sockaddr(to);
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let mut cmsg = Cmsg([0; 64]);
    // SAFETY: msghdr is plain data; all-zero is valid before the fields are set.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut ss as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = sslen;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if segment < buf.len() {
        // SAFETY: CMSG_SPACE is a pure size computation.
        let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) } as usize;
        msg.msg_control = cmsg.0.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: msg_control points at `space` (<= 64) zeroed, aligned bytes, so
        // CMSG_FIRSTHDR is non-null and the header and its u16 payload fit inside them.
        unsafe {
            let h = libc::CMSG_FIRSTHDR(&msg);
            (*h).cmsg_level = libc::SOL_UDP;
            (*h).cmsg_type = UDP_SEGMENT;
            (*h).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(h).cast::<u16>(), segment as u16);
        }
    }
    // SAFETY: every pointer in `msg` refers to live locals / `buf` for the duration of the call.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(not(target_os = "linux"))]
pub fn send_gso(
    _sock: &impl AsRawFd,
    _buf: &[u8],
    _segment: usize,
    _to: &SocketAddr,
) -> io::Result<usize> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Receive into `buf`; returns the bytes, the sender and the GRO segment size (packets of that
/// size, the last possibly shorter), or `None` when the datagram was not coalesced.
#[cfg(target_os = "linux")]
pub fn recv_gro(
    sock: &impl AsRawFd,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<usize>)> {
    // SAFETY: plain data, zero is valid.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cmsg = Cmsg([0; 64]);
    // SAFETY: plain data, zero is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut ss as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.0.as_mut_ptr().cast();
    msg.msg_controllen = cmsg.0.len() as _;
    // SAFETY: all pointers refer to live locals / `buf`; the kernel writes within the lengths.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let from = from_sockaddr(&ss).ok_or_else(|| io::Error::other("unknown address family"))?;
    let mut segment = None;
    // SAFETY: walking the control messages the kernel wrote, within msg_controllen.
    unsafe {
        let mut h = libc::CMSG_FIRSTHDR(&msg);
        while !h.is_null() {
            if (*h).cmsg_level == libc::SOL_UDP && (*h).cmsg_type == UDP_GRO {
                let s = std::ptr::read_unaligned(libc::CMSG_DATA(h).cast::<libc::c_int>());
                if s > 0 {
                    segment = Some(s as usize);
                }
            }
            h = libc::CMSG_NXTHDR(&msg, h);
        }
    }
    Ok((n as usize, from, segment))
}

#[cfg(not(target_os = "linux"))]
pub fn recv_gro(
    _sock: &impl AsRawFd,
    _buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<usize>)> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}
