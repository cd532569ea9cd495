//! Compute and network members: network security groups with their rules, virtual
//! machines with their network interfaces, and public IP addresses.
//!
//! NSG rules are emitted twice, as Azure Resource Manager has them: inside the NSG's
//! `securityRules`, and as child records of type
//! `Microsoft.Network/networkSecurityGroups/securityRules` (no location, no tags), which is
//! what the built-in SSH and RDP policies evaluate.

use rand::{Rng, seq::IndexedRandom};
use serde_json::{Value, json};

use super::catalog::{ALLOWED_VM_SIZES, IMAGES, OTHER_VM_SIZES};
use super::members::{Defect, Members, object};
use super::record::InventoryRecord;

pub(crate) const SECURITY_RULE_TYPE: &str = "Microsoft.Network/networkSecurityGroups/securityRules";

impl Members<'_> {
    /// The group's NSG, then its rules; returns the NSG's id for the NICs that use it.
    pub fn network_security_group(&mut self) -> String {
        let g = self.group;
        let name = format!("nsg-{}-{}-{}", g.app, g.env, g.region_short);
        let id = g.member_id("Microsoft.Network/networkSecurityGroups", &name);
        // SSH from the Internet, RDP from anywhere, both on a forgotten rule.
        let defect = self.defect(&[3, 1, 1]);
        // Management from inside the network only; the web port open to all is fine.
        let mut rules = vec![
            rule(&id, "allow-https-inbound", 100, &["443"], "Internet", "Allow"),
            rule(&id, "allow-ssh-vnet", 110, &["22"], "VirtualNetwork", "Allow"),
        ];
        if self.rng.random_bool(0.4) {
            rules.push(rule(&id, "allow-rdp-bastion", 120, &["3389"], "10.255.0.0/26", "Allow"));
        }
        match defect {
            Defect::Specific(0) => {
                let source = if self.rng.random_bool(0.5) { "Internet" } else { "*" };
                rules[1] = rule(&id, "allow-ssh", 110, &["22"], source, "Allow");
            }
            Defect::Specific(1) => rules.push(rule(&id, "allow-rdp", 130, &["3389"], "*", "Allow")),
            // A "temporary" rule someone forgot, with a port list rather than one port.
            Defect::Specific(_) => {
                rules.push(rule(&id, "allow-mgmt-temp", 140, &["22", "3389"], "Internet", "Allow"))
            }
            Defect::None | Defect::General => {}
        }
        rules.push(rule(&id, "deny-all-inbound", 4096, &["*"], "*", "Deny"));
        let p = json!({"securityRules": rules, "provisioningState": "Succeeded"});
        self.push("Microsoft.Network/networkSecurityGroups", &name, None, p, defect);
        for rule in rules {
            let rule_name = rule["name"].as_str().unwrap_or_default().to_owned();
            self.out.push(InventoryRecord {
                id: format!("{id}/securityRules/{rule_name}"),
                name: rule_name,
                resource_type: SECURITY_RULE_TYPE.to_owned(),
                location: String::new(),
                kind: None,
                tags: None,
                properties: Some(object(rule["properties"].clone())),
                subscription_id: None,
                resource_group: None,
            });
        }
        id
    }

    /// The public IP of the group's load balancer: public IPs exist without any policy
    /// concern, not only as the NIC defect below.
    pub fn load_balancer_ip(&mut self) {
        let g = self.group;
        let name = format!("pip-lbe-{}-{}", g.app, g.env);
        let frontend = format!(
            "{}/frontendIPConfigurations/frontend",
            g.member_id("Microsoft.Network/loadBalancers", &format!("lbe-{}-{}", g.app, g.env))
        );
        self.public_ip(&name, &frontend);
    }

    fn public_ip(&mut self, name: &str, attached_to: &str) {
        let address = format!(
            "20.{}.{}.{}",
            self.rng.random_range(1..=254),
            self.rng.random_range(0..=255),
            self.rng.random_range(1..=254)
        );
        let defect = self.defect(&[]);
        let p = json!({
            "sku": {"name": "Standard", "tier": "Regional"},
            "publicIPAllocationMethod": "Static",
            "publicIPAddressVersion": "IPv4",
            "ipAddress": address,
            "idleTimeoutInMinutes": 4,
            "ipConfiguration": {"id": attached_to},
            "provisioningState": "Succeeded",
        });
        self.push("Microsoft.Network/publicIPAddresses", name, None, p, defect);
    }

    /// A VM `vm-{role}-{nn}` after its NIC (and the NIC's public IP, when it has one).
    pub fn virtual_machine(&mut self, role: &str, number: u32, nsg: Option<&str>) {
        let g = self.group;
        let vm = format!("vm-{role}-{number:02}");
        let vm_id = g.member_id("Microsoft.Compute/virtualMachines", &vm);
        let nic = format!("{vm}-nic");
        let nic_id = g.member_id("Microsoft.Network/networkInterfaces", &nic);
        let subnet = format!(
            "{}/subnets/snet-{role}",
            g.member_id(
                "Microsoft.Network/virtualNetworks",
                &format!("vnet-{}-{}-{}", g.app, g.env, g.region_short)
            )
        );
        // A public IP, IP forwarding.
        let nic_defect = self.defect(&[3, 1]);
        let mut ip_config = json!({
            "privateIPAddress": format!("10.{}.{}.{}", (g.index / 256) % 256, g.index % 256, 4 + number),
            "privateIPAllocationMethod": "Dynamic",
            "primary": true,
            "subnet": {"id": subnet},
        });
        if nic_defect == Defect::Specific(0) {
            let pip = format!("{vm}-pip");
            self.public_ip(&pip, &format!("{nic_id}/ipConfigurations/ipconfig1"));
            ip_config["publicIPAddress"] =
                json!({"id": g.member_id("Microsoft.Network/publicIPAddresses", &pip)});
        }
        let ip_config_id = format!("{nic_id}/ipConfigurations/ipconfig1");
        let mut nic_props = json!({
            "ipConfigurations": [{"name": "ipconfig1", "id": ip_config_id, "properties": ip_config}],
            "enableIPForwarding": nic_defect == Defect::Specific(1),
            "enableAcceleratedNetworking": true,
            "virtualMachine": {"id": vm_id},
            "provisioningState": "Succeeded",
        });
        if let Some(nsg) = nsg {
            nic_props["networkSecurityGroup"] = json!({"id": nsg});
        }
        self.push("Microsoft.Network/networkInterfaces", &nic, None, nic_props, nic_defect);

        // An oversized VM, an unmanaged disk.
        let defect = self.defect(&[2, 1]);
        let (publisher, offer, sku, os) = *IMAGES.choose(self.rng).unwrap_or(&IMAGES[0]);
        let size = match defect {
            Defect::Specific(0) => OTHER_VM_SIZES.choose(self.rng),
            _ => ALLOWED_VM_SIZES.choose(self.rng),
        };
        let mut os_disk = json!({
            "osType": os,
            "name": format!("{vm}-osdisk"),
            "createOption": "FromImage",
            "caching": "ReadWrite",
        });
        if defect == Defect::Specific(1) {
            // An unmanaged disk: a VHD blob in a storage account.
            let uri = format!("https://st{}vhds.blob.core.windows.net/vhds/{vm}-osdisk.vhd", g.region_short);
            os_disk["vhd"] = json!({"uri": uri});
        } else {
            os_disk["managedDisk"] = json!({"storageAccountType": "Premium_LRS"});
            os_disk["diskSizeGB"] = json!(128);
        }
        let os_profile = if os == "Windows" {
            json!({
                "computerName": vm,
                "adminUsername": "azureadmin",
                "windowsConfiguration": {"enableAutomaticUpdates": true},
            })
        } else {
            json!({
                "computerName": vm,
                "adminUsername": "azureuser",
                "linuxConfiguration": {"disablePasswordAuthentication": true},
            })
        };
        let p = json!({
            "vmId": uuid::Builder::from_random_bytes(self.rng.random()).into_uuid().to_string(),
            "hardwareProfile": {"vmSize": size.copied().unwrap_or("Standard_B2s")},
            "storageProfile": {
                "imageReference": {"publisher": publisher, "offer": offer, "sku": sku, "version": "latest"},
                "osDisk": os_disk,
                "dataDisks": [],
            },
            "osProfile": os_profile,
            "networkProfile": {"networkInterfaces": [{"id": nic_id}]},
            "diagnosticsProfile": {"bootDiagnostics": {"enabled": true}},
            "provisioningState": "Succeeded",
        });
        self.push("Microsoft.Compute/virtualMachines", &vm, None, p, defect);
    }
}

/// A security rule as ARM lists it inside an NSG. One port goes in `destinationPortRange`,
/// several in `destinationPortRanges` (never both, as in Azure).
fn rule(nsg_id: &str, name: &str, priority: u32, ports: &[&str], source: &str, access: &str) -> Value {
    let mut properties = json!({
        "protocol": if ports == ["*"] { "*" } else { "Tcp" },
        "sourcePortRange": "*",
        "sourceAddressPrefix": source,
        "sourceAddressPrefixes": [],
        "destinationAddressPrefix": "*",
        "destinationAddressPrefixes": [],
        "access": access,
        "priority": priority,
        "direction": "Inbound",
        "provisioningState": "Succeeded",
    });
    if let [port] = ports {
        properties["destinationPortRange"] = json!(port);
        properties["destinationPortRanges"] = json!([]);
    } else {
        properties["destinationPortRanges"] = json!(ports);
    }
    json!({"name": name, "id": format!("{nsg_id}/securityRules/{name}"), "properties": properties})
}
