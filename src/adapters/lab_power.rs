//! `PowerControl` for the lab: "switching on" a workstation starts its QEMU VM on the lab
//! bridge (`crate::lab::vm`) with the workstation's MAC; a VM already running is left alone.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::lab::vm::{LabVm, LabVmConfig};
use crate::ports::{PortError, PortErrorKind, PortResult, PowerControl};

/// The lab's VMs, by workstation name.
pub struct LabPower {
    cfg: LabVmConfig,
    vms: Mutex<HashMap<String, LabVm>>,
    /// Tap number of each workstation, fixed at its first start.
    taps: Mutex<HashMap<String, u32>>,
}

impl LabPower {
    pub fn new(cfg: LabVmConfig) -> Self {
        Self {
            cfg,
            vms: Mutex::new(HashMap::new()),
            taps: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `f` on the VM of `hostname`, if it was started.
    pub fn with_vm<T>(&self, hostname: &str, f: impl FnOnce(&mut LabVm) -> T) -> Option<T> {
        self.vms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(hostname)
            .map(f)
    }

    /// Stops every VM.
    pub fn stop_all(&self) {
        let mut vms = self.vms.lock().unwrap_or_else(|e| e.into_inner());
        for vm in vms.values_mut() {
            vm.stop();
        }
        vms.clear();
    }
}

#[async_trait]
impl PowerControl for LabPower {
    async fn power_on(&self, hostname: &str, mac: &str) -> PortResult<()> {
        let mut vms = self.vms.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(vm) = vms.get_mut(hostname)
            && vm.running()
        {
            return Ok(());
        }
        let n = {
            let mut taps = self.taps.lock().unwrap_or_else(|e| e.into_inner());
            let next = taps.len() as u32;
            *taps.entry(hostname.into()).or_insert(next)
        };
        let vm = LabVm::start(&self.cfg, hostname, n, mac).map_err(|e| {
            PortError::new(
                PortErrorKind::Other,
                format!("starting the lab VM {hostname}: {e}"),
            )
            .with_source(e)
        })?;
        vms.insert(hostname.into(), vm);
        Ok(())
    }
}

/// `PowerControl` for the lab room the demo and the end-to-end test rebuild: each workstation
/// is a detached QEMU VM (`crate::lab::vm::DetachedVm`) that outlives the parc command which
/// switched it on. A workstation with a `<vms>/<hostname>.noboot` file gets a NIC without a
/// boot ROM: it never boots from the network, like a machine whose PXE is off in its BIOS.
pub struct LabVms {
    cfg: LabVmConfig,
}

impl LabVms {
    pub fn new(cfg: LabVmConfig) -> Self {
        Self { cfg }
    }

    fn start(&self, hostname: &str, mac: &str) -> PortResult<()> {
        let pxe = !self.cfg.dir.join(format!("{hostname}.noboot")).exists();
        crate::lab::vm::DetachedVm::start(&self.cfg, hostname, mac, pxe).map_err(|e| {
            PortError::new(
                PortErrorKind::Other,
                format!("starting the lab VM {hostname}: {e}"),
            )
            .with_source(e)
        })
    }
}

#[async_trait]
impl PowerControl for LabVms {
    async fn power_on(&self, hostname: &str, mac: &str) -> PortResult<()> {
        if crate::lab::vm::DetachedVm::running(&self.cfg, hostname).is_some() {
            return Ok(());
        }
        self.start(hostname, mac)
    }

    async fn restart(&self, hostname: &str, mac: &str) -> PortResult<()> {
        crate::lab::vm::DetachedVm::stop(&self.cfg, hostname);
        self.start(hostname, mac)
    }
}
